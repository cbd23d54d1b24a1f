"""The gateway on the GPU host: service-JWT check, per-user limits, metrics, then the engine.

Every route but ``/healthz`` needs a service token signed by the functions (Ed25519; this
host holds only the public key). Its ``sub`` names the end user the functions act for, so the
request limit and the token budget are per person, not per bot.

:func:`create_app` puts the gateway together; the rooms it connects:

- :mod:`model_server.gateway`: the state every route shares (settings, engines, metrics, the
  request limit and the token budget) and the 429 for a user over either;
- :mod:`model_server.completions`: the chat route, whole and streamed;
- :mod:`model_server.charges`: what a chat costs its user, charged once however it ends;
- :mod:`model_server.routes`: the route table, and embeddings, models, health and metrics;
- :mod:`model_server.middleware`: answers counted by route and status;
- :mod:`model_server.engines`: llama-server or an upstream engine, and the embedders.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import Response

from model_server.engines.base import ChatEngine, Embedder, EngineError
from model_server.gateway import Gateway
from model_server.metrics import Metrics
from model_server.middleware import CountRequests
from model_server.routes import routes
from shared.http import BearerTokenBackend, auth_error, exception_handlers, json_error
from shared.jwt_tokens import TokenVerifier
from shared.ratelimit import Quota
from shared.settings import Settings

__all__ = ["Gateway", "create_app"]


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return json_error(exc.status, exc.message, kind, exc.code,
                      headers={"Retry-After": "5"} if exc.status == 503 else None)


def create_app(
    settings: Settings,
    *,
    engine: ChatEngine,
    embedder: Embedder,
    verifier: TokenVerifier,
    metrics: Metrics | None = None,
) -> Starlette:
    """The gateway app; ``engine`` is started and closed with the app's lifespan."""
    metrics = metrics or Metrics()
    gateway = Gateway(
        settings=settings, engine=engine, embedder=embedder, metrics=metrics,
        requests=Quota(settings.rate_limit_storage, settings.model_rate_limit, "charla-ms"),
        budget=Quota(settings.rate_limit_storage, settings.token_budget, "charla-budget"),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        warm = getattr(embedder, "warm", None)
        if warm is not None:
            await warm()
        gateway.started = time.time()
        flusher = asyncio.create_task(gateway.flush_forever())
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await gateway.flush()
            await engine.close()
            close = getattr(embedder, "close", None)
            if close is not None:
                await close()

    table = routes()
    app = Starlette(
        routes=table,
        middleware=[
            Middleware(CountRequests, metrics=metrics, paths=frozenset(r.path for r in table)),
            Middleware(AuthenticationMiddleware, backend=BearerTokenBackend(verifier),
                       on_error=auth_error),
        ],
        exception_handlers=exception_handlers({EngineError: _engine_error}),
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
