"""Build the functions app from settings; ``python -m functions`` serves it with uvicorn."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from functions.api.auth import client_verifier
from functions.app import create_app
from functions.model_client import ModelClient
from shared.db import Database, make_pool
from shared.logs import configure_logging
from shared.settings import Settings


def create(settings: Settings | None = None) -> Starlette:
    """The functions app for ``settings`` (the environment when none is given)."""
    settings = settings or Settings.from_env()
    db = Database(make_pool(settings)) if settings.database_url else None
    if db is not None:
        db.keys.require()  # bodies are never stored in clear: no key, no start
    return create_app(settings, verifier=client_verifier(settings),
                      model=ModelClient(settings), db=db)


def main() -> None:
    import uvicorn

    from shared.serving import server_options  # with uvicorn: not on Lambda's path

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    app = create(settings)
    # What exists now lives as long as the process: keep it out of every garbage collection,
    # which shortens the pauses behind slow requests (docs/benchmarks.md, Slack ingress).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), access_log=False,
                timeout_graceful_shutdown=10, **server_options(settings))


if __name__ == "__main__":
    main()
