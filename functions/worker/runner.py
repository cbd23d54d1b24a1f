"""Running jobs: :class:`Runner` runs one and settles it; :class:`Worker` is the local loop.

A job ends done, retried later (``Retry``, with backoff), or failed (``GiveUp``, or the last
attempt failing); failed jobs stay in the queue, visible with their error. An unexpected
exception is logged with its traceback and treated like a retryable error.

The local worker takes due jobs from a :class:`~shared.queue.contract.WorkQueue` (Postgres)
and runs up to ``concurrency`` at once. On stop, it takes nothing new, lets running jobs
finish for a grace period, and puts back the rest. On Lambda, SQS hands the jobs over and a
:class:`Runner` settles each one on the invocation's batch (functions/worker/lambda_handler.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from functions.worker.answer import GiveUp, Retry
from shared.errors import CharlaError
from shared.queue.contract import Leases, Settles, WorkQueue
from shared.queue.jobs import Job

log = logging.getLogger(__name__)

Handler = Callable[[Job, bool], Awaitable[None]]  # (job, last attempt?)


class Runner:
    """Runs the jobs handed to it, and settles each one on ``settles``."""

    def __init__(self, settles: Settles, handle: Handler, *, max_attempts: int = 6,
                 backoff_s: float = 2.0) -> None:
        self._settles = settles
        self._handle = handle
        self._max_attempts = max_attempts
        self._backoff = backoff_s

    async def run_one(self, job: Job) -> None:
        """Run one job handed over from outside and settle it (on Lambda, SQS delivers the
        jobs and the worker function runs each record through here)."""
        await self._run(job)

    async def _run(self, job: Job) -> None:
        last = job.attempts >= self._max_attempts
        try:
            await self._handle(job, last)
        except asyncio.CancelledError:
            raise
        except GiveUp as exc:
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
            await self._settle(self._settles.fail(job, str(exc)))
            return
        except Retry as exc:
            await self._again(job, exc.reason, exc.delay_s, last)
            return
        except Exception as exc:
            log.exception("job %s (%s) raised", job.id, job.kind)
            delay = min(60.0, self._backoff * 2 ** (job.attempts - 1))
            await self._again(job, f"unexpected {type(exc).__name__}", delay, last)
            return
        await self._settle(self._settles.complete(job))

    async def _again(self, job: Job, reason: str, delay_s: float, last: bool) -> None:
        if last:
            log.warning("job %s (%s) failed after %d attempts: %s", job.id, job.kind,
                        job.attempts, reason)
            await self._settle(self._settles.fail(job, reason))
        else:
            log.info("job %s (%s) attempt %d failed (%s); again in %.1f s", job.id, job.kind,
                     job.attempts, reason, delay_s)
            await self._settle(self._settles.retry(job, reason, delay_s))

    async def _settle(self, step: Awaitable[None]) -> None:
        try:
            await step
        except CharlaError as exc:
            # The database went away: the job's lease runs out and it is taken again; the
            # outbox keeps that second run from posting twice.
            log.warning("could not record a job's outcome: %s", exc)


class Worker(Runner):
    """The local worker: takes due jobs from ``queue`` and runs them, until stopped."""

    def __init__(self, queue: WorkQueue, handle: Handler, *, concurrency: int = 8,
                 max_attempts: int = 6, backoff_s: float = 2.0, poll_s: float = 1.0,
                 grace_s: float = 10.0) -> None:
        super().__init__(queue, handle, max_attempts=max_attempts, backoff_s=backoff_s)
        self._queue = queue
        self._concurrency = concurrency
        self._poll = poll_s
        self._grace = grace_s
        self._running: dict[asyncio.Task[None], Job] = {}
        self._slot_free = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        log.info("worker started (%d at once)", self._concurrency)
        renewing = asyncio.create_task(self._renew_leases(stop))
        try:
            await self._work(stop)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
        log.info("worker stopped")

    async def _renew_leases(self, stop: asyncio.Event) -> None:
        """Every third of a lease, renew the leases of the jobs running here (a queue that
        leases jobs: Postgres; on SQS the function's timeout bounds a run instead)."""
        queue = self._queue
        if not isinstance(queue, Leases):
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=queue.lease_s / 3)
            jobs = list(self._running.values())
            if jobs:
                try:
                    await queue.renew(jobs)
                except CharlaError as exc:
                    log.warning("could not renew the leases of running jobs: %s", exc)

    async def _work(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self._concurrency - len(self._running)
            jobs: list[Job] = []
            if free > 0:
                try:
                    jobs = await self._queue.claim(free)
                except CharlaError as exc:
                    log.warning("cannot take jobs: %s; retrying", exc)
            for job in jobs:
                task = asyncio.create_task(self._run(job))
                self._running[task] = job
                task.add_done_callback(self._done)
            if len(jobs) == free and free > 0:
                continue  # more may be waiting
            await self._idle(stop, full=free <= 0 or len(jobs) == free)
        await self._drain()

    async def _idle(self, stop: asyncio.Event, *, full: bool) -> None:
        """Wait for a new job, a free slot, or stop."""
        self._slot_free.clear()
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait()),
                                            asyncio.create_task(self._slot_free.wait())]
        if not full:
            waiters.append(asyncio.create_task(self._queue.wait(self._poll)))
        _, pending = await asyncio.wait(waiters, timeout=self._poll,
                                        return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._slot_free.set()

    async def _drain(self) -> None:
        if not self._running:
            return
        _, pending = await asyncio.wait(list(self._running), timeout=self._grace)
        for task in pending:
            job = self._running.get(task)
            task.cancel()
            if job is not None:
                await self._settle(self._queue.release(job))
        await asyncio.gather(*pending, return_exceptions=True)
