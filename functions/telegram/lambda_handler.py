"""AWS Lambda entry for the Telegram webhook: API Gateway (HTTP API) → Mangum → its app.

Importing this module builds nothing: the app, its settings and the database pool come on the
first invocation and stay for the container's life (functions/lambda_app.py).
"""

from __future__ import annotations

from mangum import Mangum

from functions.lambda_app import LazyApp, webhook_app

app = LazyApp(lambda: webhook_app("telegram"))
handler = Mangum(app, lifespan="off")
