"""The local job queue on Postgres (on AWS, SQS takes its place: shared/queue/sqs.py).

:class:`PgQueue` serves both sides of the contract (shared/queue/contract.py). A webhook
accepts a delivery with :meth:`PgQueue.enqueue`: the one de-duplicating statement
(shared/queue/dedup.py) records it and queues its job, and writes what the composition layer
asked for with it (Slack's thread mark), or does nothing for a delivery seen before. The worker
takes jobs with :meth:`PgQueue.claim`, and ends each one with :meth:`complete`, :meth:`retry`
(with a delay) or :meth:`fail` (the job stays visible as failed, with its error, until an
operator retries or purges it). The whole payload is stored sealed with the database's data
keys (shared/queue/jobs.py); the other fields stay readable for operators.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb

from shared.crypto import KeyRing, sealed_key_id
from shared.db import Database
from shared.errors import SealError, StorageError
from shared.queue.dedup import Deliveries, Delivery, OnAccept
from shared.queue.jobs import Job, open_payload, seal_payload

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "charla_jobs"


def _job_columns(keys: KeyRing, delivery: Delivery) -> dict[str, Any]:
    """A delivery's job, as the ``jobs`` table stores it. Sealed just before the write: a key
    rotated meanwhile is already in use."""
    readable, sealed = seal_payload(keys, delivery.kind, delivery.payload)
    return {"job_kind": delivery.kind, "job_payload": readable,
            "job_sealed": base64.b64encode(sealed).decode() if sealed else None,
            "job_key_id": sealed_key_id(sealed) if sealed else None}


# Each delivery accepted has its job queued, in the statement that accepts it.
QUEUE_JOB = OnAccept(
    columns="job_kind text, job_payload jsonb, job_sealed text, job_key_id text",
    values=_job_columns,
    sql="INSERT INTO jobs (kind, payload, sealed, key_id) SELECT job_kind, job_payload,"
        " decode(job_sealed, 'base64'), job_key_id FROM accepted",
)


class _Batcher:
    """Deliveries that arrive while a write is in flight go together in the next one.

    Under load a webhook spends more on its database round trip (a pooled connection, a
    statement, a commit) than on everything else; sharing them among the deliveries that
    waited keeps each one durable before it is acknowledged, at a fraction of the cost
    (docs/benchmarks.md). A lone delivery goes at once: nothing waits for a batch to fill.
    """

    MAX = 500

    def __init__(self, write: Callable[[list[Delivery]], Awaitable[list[bool]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._writing = False

    async def submit(self, delivery: Delivery) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.MAX], self._waiting[self.MAX:]
                try:
                    accepted = await self._write([d for d, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), new in zip(batch, accepted, strict=True):
                    if not future.done():
                        future.set_result(new)
        finally:
            self._writing = False


class PgQueue:
    """The ``jobs`` table, shared by every process that uses the database: a
    :class:`~shared.queue.contract.JobQueue` for the webhooks, a
    :class:`~shared.queue.contract.WorkQueue` with :class:`~shared.queue.contract.Leases` for
    the worker.

    ``on_accept`` is written with each delivery accepted, in the statement that accepts it
    (shared/queue/dedup.py): the composition layer passes the platforms' (Slack's thread marks).

    A worker that dies mid-job leaves it ``running``. Each queue that claims holds, on a
    database session of its own, an advisory lock under a key of its own, and marks the jobs
    it claims with that key (``leased_by``): when the worker dies, Postgres ends its session
    and frees the lock, and the next claim by any worker takes those jobs at once. A worker
    that hangs alive keeps its lock: ``lease_s`` bounds how long its jobs stay taken. A live
    worker renews the leases of the jobs it runs (:meth:`renew`), so a long answer is not
    taken twice; and a job is ended only by the run that holds it (its ``attempts``), so a run
    that lost its job cannot end the run that took over.
    """

    def __init__(self, db: Database, *, lease_s: float = 30.0,
                 on_accept: Sequence[OnAccept] = ()) -> None:
        self._db = db
        self._lease_s = lease_s
        # LISTENs for new jobs, and holds this queue's lock while it claims (see above).
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._key = secrets.randbits(62) + 1  # a positive bigint, the lock's and leased_by's
        self._batch = _Batcher(Deliveries(db, (QUEUE_JOB, *on_accept)).accept)

    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        """Queue a job; with ``dedup``, only if that delivery was not accepted before."""
        if dedup is None:
            readable, sealed = seal_payload(self._db.keys, kind, payload)
            async with self._db.connection() as conn:
                await conn.execute(
                    "INSERT INTO jobs (kind, payload, sealed, key_id) VALUES (%s, %s, %s, %s)",
                    (kind, Jsonb(readable), sealed, sealed_key_id(sealed) if sealed else None))
            return True
        return await self._batch.submit(Delivery(dedup[0], dedup[1], kind, payload))

    async def claim(self, limit: int) -> list[Job]:
        await self._session()  # the lock first: a job marked with our key is never orphaned
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                " locked_until = now() + make_interval(secs => %s), leased_by = %s"
                " WHERE id IN (SELECT id FROM jobs WHERE run_at <= now() AND"
                " (state = 'queued' OR (state = 'running' AND (locked_until < now()"
                # Its worker is gone: nobody holds the lock under the key it marked it with.
                "  OR (leased_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_locks l"
                "      WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"
                "      AND l.database = (SELECT oid FROM pg_database"
                "                        WHERE datname = current_database())"
                "      AND ((l.classid::bigint << 32) | l.objid::bigint) = jobs.leased_by)))))"
                " ORDER BY run_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, kind, payload, sealed, attempts, created_at",
                (self._lease_s, self._key, limit),
            )
            rows = await cur.fetchall()
        jobs = []
        for r in rows:
            try:
                payload = open_payload(self._db.keys, r)
            except SealError as exc:
                # No attempt can open it: the job fails now, visible to operators.
                log.error("job %s: payload does not open: %s", r["id"], exc)
                await self._finish(Job(str(r["id"]), str(r["kind"]), {},
                                       cast(int, r["attempts"])),
                                   "UPDATE jobs SET state = 'failed', locked_until = NULL,"
                                   " last_error = %s, finished_at = now() WHERE id = %s",
                                   (str(exc)[:1000],))
                continue
            jobs.append(Job(str(r["id"]), str(r["kind"]), payload, cast(int, r["attempts"]),
                            queued_at=cast(datetime, r["created_at"])))
        return jobs

    @property
    def lease_s(self) -> float:
        return self._lease_s

    async def renew(self, jobs: list[Job]) -> None:
        """Extend the leases of ``jobs``, still running, by another ``lease_s``."""
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE jobs SET locked_until = now() + make_interval(secs => %s)"
                " FROM unnest(%s::bigint[], %s::int[]) AS held(id, attempts)"
                " WHERE jobs.id = held.id AND jobs.attempts = held.attempts"
                " AND jobs.state = 'running'",
                (self._lease_s, [int(j.id) for j in jobs], [j.attempts for j in jobs]))

    async def _finish(self, job: Job, sql: str, params: tuple[Any, ...]) -> None:
        """Run ``sql`` (ending ``WHERE id = %s``) on ``job``'s row, if this run still holds it:
        after a lost lease another run took the job (``attempts`` went up), and it ends it."""
        async with self._db.connection() as conn:
            cur = await conn.execute(sql + " AND attempts = %s",
                                     (*params, int(job.id), job.attempts))
            if cur.rowcount == 0:
                log.warning("job %s: not ended by attempt %d, another attempt holds it",
                            job.id, job.attempts)

    async def complete(self, job: Job) -> None:
        await self._finish(job, "UPDATE jobs SET state = 'done', locked_until = NULL,"
                           " finished_at = now() WHERE id = %s", ())

    async def retry(self, job: Job, error: str, delay_s: float) -> None:
        await self._finish(job, "UPDATE jobs SET state = 'queued', locked_until = NULL,"
                           " last_error = %s, run_at = now() + make_interval(secs => %s)"
                           " WHERE id = %s", (error[:1000], delay_s))

    async def fail(self, job: Job, error: str) -> None:
        await self._finish(job, "UPDATE jobs SET state = 'failed', locked_until = NULL,"
                           " last_error = %s, finished_at = now() WHERE id = %s",
                           (error[:1000],))

    async def release(self, job: Job) -> None:
        await self._finish(job, "UPDATE jobs SET state = 'queued', locked_until = NULL,"
                           " attempts = greatest(attempts - 1, 0) WHERE id = %s", ())

    async def _session(self) -> psycopg.AsyncConnection[Any]:
        """This queue's own session: it LISTENs for new jobs and holds the lock under
        ``self._key`` (taken again after a reconnection; :class:`StorageError` if it cannot)."""
        if self._listener is None or self._listener.closed:
            try:
                self._listener = await psycopg.AsyncConnection.connect(
                    cast(str, self._db.pool.conninfo), autocommit=True, connect_timeout=5)
                await self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                await self._listener.execute("SELECT pg_advisory_lock(%s)", (self._key,))
                self._db.on_close(self.close)
            except psycopg.Error as exc:
                await self.close()
                raise StorageError("the job queue's session could not be opened") from exc
        return self._listener

    async def wait(self, timeout_s: float) -> None:
        """Wait for a NOTIFY from a new job (a trigger sends one), or the timeout."""
        try:
            listener = await self._session()
            async for _ in listener.notifies(timeout=timeout_s, stop_after=1):
                pass
        except (psycopg.Error, StorageError):
            # No listener (the database restarting): fall back to polling.
            await self.close()
            await asyncio.sleep(timeout_s)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(psycopg.Error):
                await listener.close()

    # Operators: failed jobs stay visible until retried or purged.

    async def failed_count(self) -> int:
        async with self._db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM jobs WHERE state = 'failed'")
            row = await cur.fetchone()
        return cast(int, row["n"]) if row else 0

    async def failed(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT id, kind, attempts, last_error, created_at, finished_at FROM jobs"
                " WHERE state = 'failed' ORDER BY finished_at DESC LIMIT %s", (limit,))
            return list(await cur.fetchall())

    async def retry_failed(self, job_id: int) -> bool:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now(),"
                " finished_at = NULL WHERE id = %s AND state = 'failed'", (job_id,))
            return cur.rowcount == 1
