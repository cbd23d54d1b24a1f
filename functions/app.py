"""The functions app: every HTTP entry on one Starlette app for the local stack.

On AWS each entry runs as its own Lambda (a later step); locally ``charla up`` serves this one
app on 127.0.0.1:8000 with uvicorn. Resources open lazily: under Mangum the lifespan does not
run, so nothing here depends on it but the local housekeeping (migrations, audit purge).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from slowapi.errors import RateLimitExceeded
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from functions import metrics, platforms, web
from functions.api import documents, embeddings, moderations, rag
from functions.api.routes import ApiContext, chat_completions, list_models
from functions.knowledge import Knowledge
from functions.limit import limit_routes, make_limiter, rate_limit_exceeded
from functions.model_client import ModelClient, ModelServerError
from functions.webhooks import build as build_webhooks
from shared.db import Database
from shared.errors import CharlaError, StorageError
from shared.http import BearerTokenBackend, auth_error, exception_handlers, json_error
from shared.jwt_tokens import TokenVerifier
from shared.knowledge.store import KnowledgeError
from shared.migrate import migrate
from shared.queue.contract import JobQueue
from shared.queue.postgres import PgQueue
from shared.settings import Settings

log = logging.getLogger(__name__)

PLATFORMS = platforms.everyone()
# Webhooks authenticate by the platform's check (functions/platform.py), not by a bearer token.
PUBLIC_PATHS = ("/healthz", *(p.route for p in PLATFORMS), *web.PUBLIC_PATHS)


async def healthz(request: Request) -> Response:
    """Liveness plus the state of what answers depend on; 200 while this process serves."""
    ctx: ApiContext = request.app.state.api
    database = "not configured"
    if ctx.db is not None:
        try:
            async with ctx.db.connection() as conn:
                await conn.execute("SELECT 1")
            database = "ok"
        except CharlaError:
            database = "unavailable"
    model_server = "ok" if await ctx.model.healthy() else "unavailable"
    degraded = "unavailable" in (database, model_server)
    return JSONResponse({"status": "degraded" if degraded else "ok",
                         "database": database, "model_server": model_server})



async def _knowledge_error(request: Request, exc: Exception) -> Response:
    return json_error(409, str(exc), "invalid_request_error", "knowledge_conflict")


async def _model_server_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelServerError)
    kind = "rate_limit_exceeded" if exc.status == 429 else (
        "invalid_request_error" if exc.status < 500 else "server_error")
    # Only a refusal (429) or an unavailable server (503) says when to try again.
    retry = exc.retry_after if exc.status in (429, 503) else None
    headers = {"Retry-After": retry} if retry else None
    return json_error(exc.status, exc.message, kind, exc.code, headers=headers)


async def _storage_error(request: Request, exc: Exception) -> Response:
    log.error("database unavailable on %s", request.url.path)
    return json_error(503, "the database is unavailable; try again shortly", "server_error",
                      headers={"Retry-After": "5"})




def create_app(
    settings: Settings,
    *,
    verifier: TokenVerifier,
    model: ModelClient,
    db: Database | None,
    housekeeping: bool = True,
    queue: JobQueue | None = None,
) -> Starlette:
    """The functions app. ``housekeeping`` runs migrations in its lifespan (the worker purges
    what is past retention); webhooks queue jobs on ``queue`` (default: Postgres, when there is
    a database)."""
    knowledge = Knowledge(db, model, passages=settings.kb_passages,
                          max_distance=settings.kb_max_distance) if db is not None else None
    ctx = ApiContext(settings=settings, db=db, model=model, knowledge=knowledge)
    if queue is None and db is not None:
        queue = PgQueue(db, lease_s=settings.job_lease_s,
                        on_accept=platforms.on_accept(PLATFORMS))
    hooks = build_webhooks(settings, (lambda: db) if db is not None else None, queue, PLATFORMS)
    limiter = make_limiter(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if db is not None and housekeeping:
            assert settings.database_url is not None
            await migrate(settings.database_url.reveal())
            await db.open()
        try:
            yield
        finally:
            await ctx.drain()
            await ctx.moderation.close()
            await hooks.close()
            await model.close()
            if db is not None:
                await db.close()

    routes: list[BaseRoute] = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/moderations", moderations.create_moderation, methods=["POST"]),
        Route("/v1/embeddings", embeddings.create_embeddings, methods=["POST"]),
        Route("/metrics", metrics.metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/documents", documents.upload, methods=["POST"]),
        Route("/v1/documents", documents.listing, methods=["GET"]),
        Route("/v1/documents/{document_id}", documents.delete, methods=["DELETE"]),
        Route("/v1/collections", rag.list_collections, methods=["GET"]),
        Route("/v1/passages/{chunk_id}", rag.show_passage, methods=["GET"]),
        *(Route(p.route, p.endpoint, methods=["POST"]) for p in PLATFORMS),
        # The chat page, the admin view and its /v1/admin/ API (functions/web/).
        *web.ROUTES,
    ]

    app = Starlette(
        # One allowance per client, shared by every route that needs a token (functions/limit.py).
        routes=limit_routes(routes, limiter, settings.api_rate_limit, public=PUBLIC_PATHS),
        middleware=[
            Middleware(AuthenticationMiddleware,
                       backend=BearerTokenBackend(verifier, public_paths=PUBLIC_PATHS),
                       on_error=auth_error),
        ],
        exception_handlers=exception_handlers({
            KnowledgeError: _knowledge_error,
            rag.NotReadable: rag.not_readable,
            ModelServerError: _model_server_error,
            StorageError: _storage_error,
            RateLimitExceeded: rate_limit_exceeded,
        }),
        lifespan=lifespan,
    )
    app.state.api = ctx
    app.state.webhooks = hooks
    app.state.limiter = limiter
    return app
