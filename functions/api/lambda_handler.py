"""AWS Lambda entry for the OpenAI-compatible API: API Gateway (HTTP API) → Mangum → the app.

Importing this module builds nothing: the app, its settings and the database pool come on the
first invocation and stay for the container's life (functions/lambda_app.py). API Gateway
buffers whole responses, so a streamed answer (``stream: true``) arrives in one piece there.
"""

from __future__ import annotations

from mangum import Mangum

from functions.lambda_app import LazyApp, api_app

app = LazyApp(api_app)
handler = Mangum(app, lifespan="off")
