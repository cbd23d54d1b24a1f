"""The job queue between the webhooks and the worker: one interface, Postgres behind it locally.

A webhook accepts a delivery with :meth:`JobQueue.enqueue`, which also de-duplicates it (a
delivery id seen before enqueues nothing); the worker takes jobs with :meth:`JobQueue.claim`,
and ends each one with :meth:`complete`, :meth:`retry` (with a delay) or :meth:`fail` (the job
stays visible as failed, with its error, until an operator retries or purges it). On AWS the
same interface is served by SQS (a later step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol, cast

import psycopg
from psycopg.types.json import Jsonb

from shared.db import Database

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "charla_jobs"


@dataclass(frozen=True)
class Job:
    """A job taken by a worker; ``attempts`` counts this one."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int


class JobQueue(Protocol):
    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        """Queue a job; False (and nothing queued) if ``dedup`` (platform, delivery id) was
        accepted before."""

    async def claim(self, limit: int) -> list[Job]:
        """Take up to ``limit`` jobs that are due."""

    async def complete(self, job: Job) -> None:
        """The job is done."""

    async def retry(self, job: Job, error: str, delay_s: float) -> None:
        """Run the job again after ``delay_s``."""

    async def fail(self, job: Job, error: str) -> None:
        """Give up on the job; it stays visible as failed."""

    async def release(self, job: Job) -> None:
        """Put a taken job back untouched (a worker stopping), not counting the attempt."""

    async def wait(self, timeout_s: float) -> None:
        """Return when a job may have arrived, or after ``timeout_s``."""


class PgQueue:
    """:class:`JobQueue` on the ``jobs`` table, shared by every process that uses the database.

    ``lease_s`` bounds how long a job stays taken: a worker that dies mid-job leaves it
    ``running``, and once the lease has run out another worker takes it again.
    """

    def __init__(self, db: Database, *, lease_s: float = 300.0) -> None:
        self._db = db
        self._lease_s = lease_s
        self._listener: psycopg.AsyncConnection[Any] | None = None

    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        async with self._db.connection() as conn:
            if dedup is None:
                await conn.execute("INSERT INTO jobs (kind, payload) VALUES (%s, %s)",
                                   (kind, Jsonb(payload)))
                return True
            # One statement: the delivery is recorded and its job queued together, or neither.
            cur = await conn.execute(
                "WITH accepted AS (INSERT INTO inbound_deliveries (platform, delivery_id)"
                " VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1)"
                " INSERT INTO jobs (kind, payload) SELECT %s, %s FROM accepted RETURNING id",
                (dedup[0], dedup[1], kind, Jsonb(payload)),
            )
            return await cur.fetchone() is not None

    async def claim(self, limit: int) -> list[Job]:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                " locked_until = now() + make_interval(secs => %s)"
                " WHERE id IN (SELECT id FROM jobs WHERE run_at <= now() AND"
                " (state = 'queued' OR (state = 'running' AND locked_until < now()))"
                " ORDER BY run_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, kind, payload, attempts",
                (self._lease_s, limit),
            )
            rows = await cur.fetchall()
        return [Job(str(r["id"]), str(r["kind"]), cast(dict[str, Any], r["payload"]),
                    cast(int, r["attempts"])) for r in rows]

    async def _finish(self, job: Job, sql: str, params: tuple[Any, ...]) -> None:
        async with self._db.connection() as conn:
            await conn.execute(sql, (*params, int(job.id)))

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

    async def wait(self, timeout_s: float) -> None:
        """Wait for a NOTIFY from a new job (a trigger sends one), or the timeout."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(
                    cast(str, self._db.pool.conninfo), autocommit=True, connect_timeout=5)
                await self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            async for _ in self._listener.notifies(timeout=timeout_s, stop_after=1):
                pass
        except psycopg.Error:
            # No listener (the database restarting): fall back to polling.
            await self.close()
            await asyncio.sleep(timeout_s)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(psycopg.Error):
                await listener.close()

    # Operators: failed jobs stay visible until retried or purged.

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

    async def purge(self, *, older_than_days: int, batch: int = 1000) -> int:
        """Delete finished jobs and remembered deliveries older than the given age."""
        total = 0
        for sql in (
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('done',"
            " 'failed') AND finished_at < now() - make_interval(days => %s) LIMIT %s)",
            "DELETE FROM inbound_deliveries WHERE (platform, delivery_id) IN (SELECT"
            " platform, delivery_id FROM inbound_deliveries WHERE received_at < now() -"
            " make_interval(days => %s) LIMIT %s)",
            "DELETE FROM outbound_messages WHERE (delivery, part) IN (SELECT delivery, part"
            " FROM outbound_messages WHERE updated_at < now() - make_interval(days => %s)"
            " LIMIT %s)",
        ):
            while True:
                async with self._db.connection() as conn:
                    cur = await conn.execute(sql, (older_than_days, batch))
                total += cur.rowcount
                if cur.rowcount < batch:
                    break
        return total



