"""``/v1/admin/...``: what the admin view shows operators, for tokens with the ``admin`` scope.

``GET health``, ``GET usage?bucket=hour|day&hours=N``, ``GET jobs/failed``,
``POST jobs/{id}/retry``, ``GET collections``, ``GET`` and ``DELETE users/{platform}/{id}``
(everything stored about one person: export it, or forget it). Without a token the
middleware answers 401; a token without the scope gets 403 (``charla token --sub ops --scope
admin``). Failed jobs are the ``jobs`` table's, or on AWS (``CHARLA_QUEUE=sqs``) the SQS
queue's dead-letter queue (shared/queue/dead_letters.py), whose jobs are named by message id.
"""

from __future__ import annotations

import asyncio
import logging
import re
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
from shared.queue.dead_letters import DeadLetters
from shared.queue.postgres import PgQueue
from shared.usage import Bucket, usage

log = logging.getLogger(__name__)

SCOPE = "admin"
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
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
    dead = _dead_letters(request)
    if dead is not None:
        try:
            failed = await asyncio.to_thread(dead.count)
        except CharlaError as exc:
            log.warning("admin health: the dead-letter queue cannot be read: %s", exc)
            failed = None
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


def _dead_letters(request: Request) -> DeadLetters | None:
    """The dead-letter queue, when jobs go through SQS (on AWS); None with the local queue."""
    from shared.queue.sqs import SqsQueue

    queue = request.app.state.webhooks.queue
    return queue.dead_letters() if isinstance(queue, SqsQueue) else None


async def _failed_jobs(request: Request, ctx: ApiContext, db: Database) -> Response:
    dead = _dead_letters(request)
    if dead is not None:
        found = await asyncio.to_thread(dead.peek, 100)
        return JSONResponse({"object": "list", "data": [
            {"id": job.message_id, "kind": job.kind,
             "attempts": int(job.attempts) if job.attempts.isdigit() else None,
             "error": job.error, "created_at": None, "finished_at": _when(job.sent_at)}
            for job in found]})
    jobs = await PgQueue(db).failed()
    return JSONResponse({"object": "list", "data": [
        {"id": job["id"], "kind": job["kind"], "attempts": job["attempts"],
         "error": job["last_error"], "created_at": _when(job["created_at"]),
         "finished_at": _when(job["finished_at"])} for job in jobs]})


async def _retry_job(request: Request, ctx: ApiContext, db: Database) -> Response:
    dead = _dead_letters(request)
    if dead is not None:
        message_id = str(request.path_params["job_id"])
        if not _MESSAGE_ID.match(message_id):
            raise BadRequest("a job id on SQS is its message id")
        if not await asyncio.to_thread(dead.move_back, message_id):
            return json_error(404, f"no failed job {message_id} in the dead-letter queue",
                              "invalid_request_error", "job_not_found")
        return JSONResponse({"id": message_id, "state": "queued"})
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
    # Everyone granted a collection reads it; "writers" are those also granted to write
    # (charla grant C P --write), so a program that may change the answers stands out.
    readers: dict[str, list[str]] = {}
    writers: dict[str, list[str]] = {}
    for grant in await store.grants():
        readers.setdefault(grant.collection, []).append(grant.principal)
        if grant.write:
            writers.setdefault(grant.collection, []).append(grant.principal)
    data: list[dict[str, Any]] = [
        {"name": c.name, "documents": c.documents, "chunks": c.chunks,
         "embedding_model": c.embedding_model, "readers": readers.get(c.name, []),
         "writers": writers.get(c.name, [])}
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
