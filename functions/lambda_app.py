"""What one AWS Lambda container builds once and keeps: settings, the database, the queue, an app.

A container imports one ``functions/<entry>/lambda_handler.py`` and then serves invocations one
at a time for as long as it lives. Nothing is built at import: on the first invocation the
settings are read (secrets from AWS laid over the environment, shared/secrets.py), then the
entry's app; the database pool opens on the first query. All of it stays for the next
invocations, on the same event loop (Mangum's for the HTTP entries).

The HTTP entries are Starlette apps under ``Mangum(app, lifespan="off")``: Mangum would run a
lifespan on every invocation, so nothing here depends on one (migrations run through the
worker function, shared/migrate.py). A webhook function builds an app with its own route only
and imports neither the API's modules nor the worker's: its cold start stays small
(docs/benchmarks.md, "Cold start on Lambda").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import CharlaError, ConfigError, StorageError
from shared.http import exception_handlers, json_error
from shared.logs import configure_logging
from shared.queue.contract import JobQueue
from shared.secrets import Overlay, environ_with_secrets
from shared.settings import Settings

if TYPE_CHECKING:
    from functions.platform import Platform
    from shared.db import Database

log = logging.getLogger(__name__)

# Defaults that suit a container serving one request at a time, many containers at once: a
# small pool each, so that a burst of containers does not exhaust the database's connections.
LAMBDA_DEFAULTS = {"CHARLA_DB_POOL_MAX": "3"}

_state: dict[str, Any] = {}  # this container's: built on first use, kept until it ends
_closers: list[Callable[[], Awaitable[None]]] = []


def settings() -> Settings:
    """The settings, with the secrets from AWS laid over the environment; read once."""
    if "settings" not in _state:
        built = Settings.from_env(Overlay(LAMBDA_DEFAULTS, environ_with_secrets(os.environ)))
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            configure_logging(built.log_level)
        _state["settings"] = built
    result: Settings = _state["settings"]
    return result


def database() -> Database:
    """The container's pool; it connects on the first query, not here. A webhook function
    on SQS calls this only for the deliveries that need the database (a thread reply, /reset,
    /forget): psycopg is not imported before."""
    if "db" not in _state:
        from shared.db import Database, make_pool

        s = settings()
        if s.database_url is None:
            raise ConfigError("DATABASE_URL is not set: the functions need the database")
        db = Database(make_pool(s))
        db.keys.require()  # bodies are never stored in clear: no key, no start
        _state["db"] = db
        _closers.append(db.close)
    result: Database = _state["db"]
    return result


def job_queue(platforms: Sequence[Platform]) -> JobQueue:
    """Where webhooks queue jobs: SQS or Postgres, as ``CHARLA_QUEUE`` says; on Postgres,
    what ``platforms`` record with each delivery is written as it is accepted (on SQS the
    worker records deliveries)."""
    if "queue" not in _state:
        s = settings()
        if s.queue == "sqs":
            from shared.crypto import KeyRing
            from shared.queue.sqs import SqsQueue

            keys = KeyRing.from_settings(s)
            keys.require()  # what people wrote travels sealed: no key, no start
            queue = SqsQueue(s.sqs_queue_url, keys)
            _closers.append(queue.close)
            _state["queue"] = queue
        else:
            from functions.platforms import on_accept
            from shared.queue.postgres import PgQueue

            _state["queue"] = PgQueue(database(), lease_s=s.job_lease_s,
                                      on_accept=on_accept(platforms))
    result: JobQueue = _state["queue"]
    return result


def webhook_app(entry: str) -> Starlette:
    """The app of one platform's webhook function: its route, nothing else.

    It loads its own platform's description alone (functions/platforms.py), so it imports no
    other platform's modules and builds no other platform's check.
    """
    from functions import platforms
    from functions.webhooks import build

    platform = platforms.load(entry)
    hooks = build(settings(), database, job_queue([platform]), [platform])
    _closers.append(hooks.close)
    app = Starlette(
        routes=[Route(platform.route, platform.endpoint, methods=["POST"])],
        exception_handlers=exception_handlers({StorageError: _unavailable}),
    )
    app.state.webhooks = hooks
    return app


def api_app() -> Starlette:
    """The app of the API function: the whole functions app (its other routes unused there)."""
    from functions.api.auth import client_verifier
    from functions.app import PLATFORMS, create_app
    from functions.model_client import ModelClient

    s = settings()
    model = ModelClient(s)
    app = create_app(s, verifier=client_verifier(s), model=model, db=database(),
                     housekeeping=False, queue=job_queue(PLATFORMS))
    _closers.extend([app.state.api.drain, app.state.webhooks.close, model.close])
    return app


def on_close(*closers: Callable[[], Awaitable[None]]) -> None:
    """Have :func:`aclose` close these too."""
    _closers.extend(closers)


class LazyApp:
    """An ASGI app built by ``build`` on its first request, then kept with the container's
    state (so :func:`aclose` forgets it too).

    A build that fails on configuration (a missing setting, AWS refusing the secret) answers
    500 with one log line and is tried again on the next request.
    """

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._key = f"app-{id(self)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: ASGIApp | None = _state.get(self._key)
        if app is None:
            try:
                app = _state[self._key] = self._build()
            except ConfigError as exc:
                log.error("cannot start: %s", exc)
                await json_error(500, "the server is not configured", "server_error")(
                    scope, receive, send)
                return
        await app(scope, receive, send)


async def aclose() -> None:
    """Close what this container opened and forget it (tests end a 'container' with this)."""
    from shared import secrets

    while _closers:
        close = _closers.pop()
        try:
            await close()
        except CharlaError as exc:
            log.warning("closing: %s", exc)
    _state.clear()
    secrets.forget()



async def _unavailable(request: Request, exc: Exception) -> Response:
    # The platform delivers again after a 5xx: nothing accepted is lost.
    log.error("%s: %s", request.url.path, exc)
    return json_error(503, "temporarily unavailable; try again shortly", "server_error",
                      headers={"Retry-After": "5"})


