"""The job queue's contract, with no database behind it: what a job is, what a queue does, and
how a payload's private fields are sealed.

A webhook accepts a delivery with :meth:`JobQueue.enqueue`; the worker takes jobs with
:meth:`JobQueue.claim`, and ends each one with :meth:`complete`, :meth:`retry` (with a delay) or
:meth:`fail`. Locally :class:`shared.queue.PgQueue` serves it on Postgres; on AWS
:class:`shared.sqs_queue.SqsQueue` on SQS. This module imports neither psycopg nor an AWS
client, so that a webhook function's cold start pays for neither (docs/benchmarks.md).

A payload's :data:`SEALED_FIELDS` (what people wrote, and where the answer goes) must not rest
or travel in clear: both queues seal the whole payload with the data keys (shared/crypto.py)
and keep only the other fields readable, for operators and their queries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast, runtime_checkable

from shared.crypto import KeyRing

# Payload fields stored only sealed: a message's text, and its reply address (Discord's holds
# the interaction token).
SEALED_FIELDS = ("text", "reply_to")


def job_aad(kind: str) -> bytes:
    return b"jobs\0" + kind.encode()


def seal_payload(keys: KeyRing, kind: str, payload: dict[str, Any]
                 ) -> tuple[dict[str, Any], bytes | None]:
    """The payload's readable part, and the whole payload sealed (None when nothing in it
    needs sealing)."""
    if not any(name in payload for name in SEALED_FIELDS):
        return payload, None
    readable = {k: v for k, v in payload.items() if k not in SEALED_FIELDS}
    return readable, keys.seal(json.dumps(payload, ensure_ascii=False), job_aad(kind))


def open_payload(keys: KeyRing, row: dict[str, Any]) -> dict[str, Any]:
    """A stored job's whole payload (``kind``, ``payload``, ``sealed`` columns)."""
    if row["sealed"] is None:
        return cast(dict[str, Any], row["payload"])
    return cast(dict[str, Any], json.loads(keys.open(bytes(row["sealed"]), job_aad(row["kind"]))))


@dataclass(frozen=True)
class Job:
    """A job taken by a worker; ``attempts`` counts this one; ``queued_at`` when it was
    queued, when the queue says."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    queued_at: datetime | None = None


class JobQueue(Protocol):
    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        """Queue a job; False (and nothing queued) if ``dedup`` (platform, delivery id) was
        accepted before. A queue that cannot tell at once (SQS: the webhook function holds no
        database connection) queues it with its delivery id, and the worker drops the copy
        (shared/sqs_queue.py)."""

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


@runtime_checkable
class Leases(Protocol):
    """A queue whose taken jobs are taken for ``lease_s`` seconds only (Postgres's): a worker
    renews the leases of the jobs it still runs, or another worker takes them again."""

    @property
    def lease_s(self) -> float: ...

    async def renew(self, jobs: list[Job]) -> None:
        """Extend the leases of ``jobs`` (those this worker still runs)."""
