"""What a queue promises, in three parts, so that each queue promises only what it does.

- :class:`JobQueue`: jobs can be put on it. The webhooks need this alone (functions/webhooks.py).
  Both queues are one: Postgres (shared/queue/postgres.py) and SQS (shared/queue/sqs.py).
- :class:`Settles`: a job handed to a run can be ended: done, again later, or given up. On
  Lambda, SQS hands the worker function its jobs, and :class:`~shared.queue.sqs.SqsBatch`
  settles them (functions/worker/lambda_handler.py).
- :class:`WorkQueue`: a worker takes jobs from it itself, and settles them there: the Postgres
  queue, for the local worker (functions/worker/runner.py). A queue that takes jobs for a
  while only also :class:`Leases` them.

No module here imports a database driver or an AWS client: a webhook function's cold path
loads this one (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from shared.queue.jobs import Job


class JobQueue(Protocol):
    """Where a webhook puts the job that answers a delivery."""

    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        """Queue a job; False (and nothing queued) if ``dedup`` (platform, delivery id) was
        accepted before. A queue that cannot tell at once (SQS: the webhook function holds no
        database connection) queues it with its delivery id, and the worker drops the copy
        (shared/queue/dedup.py)."""


class Settles(Protocol):
    """How a run ends the job it was handed."""

    async def complete(self, job: Job) -> None:
        """The job is done."""

    async def retry(self, job: Job, error: str, delay_s: float) -> None:
        """Run the job again after ``delay_s``."""

    async def fail(self, job: Job, error: str) -> None:
        """Give up on the job; it stays visible as failed."""

    async def release(self, job: Job) -> None:
        """Put a taken job back untouched (a worker stopping), not counting the attempt."""


class WorkQueue(Settles, Protocol):
    """A queue a worker takes its jobs from, and settles them on."""

    async def claim(self, limit: int) -> list[Job]:
        """Take up to ``limit`` jobs that are due."""

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
