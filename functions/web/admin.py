"""``/v1/admin/...``: what the admin view shows operators, for tokens with the ``admin`` scope.

``GET health``, ``GET usage?bucket=hour|day&hours=N``, ``GET jobs/failed``,
``POST jobs/{id}/retry``, ``GET collections``, ``GET`` and ``DELETE users/{platform}/{id}``
(everything stored about one person: export it, or forget it). Without a token the
middleware answers 401; a token without the scope gets 403 (``charla token --sub ops --scope
admin``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.routes import ApiContext
from shared.db import Database
from shared.errors import BadRequest, CharlaError
from shared.http import json_error
from shared.knowledge.store import KnowledgeStore
from shared.privacy import Counters, Person, export, forget_everything, summary
from shared.queue import PgQueue
from shared.usage import Bucket, usage

SCOPE = "admin"
MAX_HOURS = {"hour": 24 * 14, "day": 24 * 366}
Handler = Callable[[Request, ApiContext, Database], Awaitable[Response]]


def admin_only(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The route for ``handler``: 403 without the scope, 503 without a database."""
    async def route(request: Request) -> Response:
        if SCOPE not in request.auth.scopes:
            return json_error(403, f"this token lacks the {SCOPE!r} scope "
                              f"(charla token --sub NAME --scope {SCOPE})", "permission_error",
                              "insufficient_scope")
        ctx: ApiContext = request.app.state.api
        if ctx.db is None:
            return json_error(503, "the admin view needs a database (DATABASE_URL)",
                              "server_error")
        return await handler(request, ctx, ctx.db)

    route.__name__ = handler.__name__
    return route


def _when(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


async def _health(request: Request, ctx: ApiContext, db: Database) -> Response:
    started = time.perf_counter()
    model_ok = await ctx.model.healthy()
    model_ms = round((time.perf_counter() - started) * 1000)
    failed: int | None
    try:
        database, failed = "ok", await PgQueue(db).failed_count()
    except CharlaError:
        database, failed = "unavailable", None
    degraded = not model_ok or database != "ok"
    return JSONResponse({
        "status": "degraded" if degraded else "ok", "database": database,
        "model_server": "ok" if model_ok else "unavailable", "model_server_ms": model_ms,
        "model": ctx.settings.model_name, "failed_jobs": failed,
    })


async def _usage(request: Request, ctx: ApiContext, db: Database) -> Response:
    raw_bucket = request.query_params.get("bucket", "hour")
    if raw_bucket not in MAX_HOURS:
        raise BadRequest("'bucket' is 'hour' or 'day'")
    bucket: Bucket = "hour" if raw_bucket == "hour" else "day"
    try:
        hours = int(request.query_params.get("hours", "24"))
    except ValueError:
        raise BadRequest("'hours' is a whole number") from None
    if not 1 <= hours <= MAX_HOURS[bucket]:
        raise BadRequest(f"'hours' goes from 1 to {MAX_HOURS[bucket]} by {bucket}")
    return JSONResponse(await usage(db, bucket=bucket, hours=hours))


async def _failed_jobs(request: Request, ctx: ApiContext, db: Database) -> Response:
    jobs = await PgQueue(db).failed()
    return JSONResponse({"object": "list", "data": [
        {"id": job["id"], "kind": job["kind"], "attempts": job["attempts"],
         "error": job["last_error"], "created_at": _when(job["created_at"]),
         "finished_at": _when(job["finished_at"])} for job in jobs]})


async def _retry_job(request: Request, ctx: ApiContext, db: Database) -> Response:
    try:
        job_id = int(request.path_params["job_id"])
    except ValueError:
        raise BadRequest("a job id is a number") from None
    if not await PgQueue(db).retry_failed(job_id):
        return json_error(404, f"no failed job {job_id}", "invalid_request_error",
                          "job_not_found")
    return JSONResponse({"id": job_id, "state": "queued"})


async def _collections(request: Request, ctx: ApiContext, db: Database) -> Response:
    store = KnowledgeStore(db)
    readers: dict[str, list[str]] = {}
    for collection, principal in await store.grants():
        readers.setdefault(collection, []).append(principal)
    data: list[dict[str, Any]] = [
        {"name": c.name, "documents": c.documents, "chunks": c.chunks,
         "embedding_model": c.embedding_model, "readers": readers.get(c.name, [])}
        for c in await store.collections()]
    return JSONResponse({"object": "list", "data": data})


def _person(request: Request) -> Person:
    try:
        return Person(str(request.path_params["platform"]), str(request.path_params["user"]))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def _user_export(request: Request, ctx: ApiContext, db: Database) -> Response:
    person = _person(request)
    settings = ctx.settings
    counters = await asyncio.to_thread(
        Counters(settings.rate_limit_storage).export, person)
    return JSONResponse(await export(db, person, counters=counters))


async def _user_forget(request: Request, ctx: ApiContext, db: Database) -> Response:
    person = _person(request)
    removed = await forget_everything(db, ctx.settings.rate_limit_storage, person)
    return JSONResponse({"platform": person.platform, "user": person.id, "removed": removed,
                         "summary": summary(person, removed)})


health = admin_only(_health)
user_export = admin_only(_user_export)
user_forget = admin_only(_user_forget)
usage_series = admin_only(_usage)
failed_jobs = admin_only(_failed_jobs)
retry_job = admin_only(_retry_job)
collections = admin_only(_collections)
