"""AWS Lambda entry for the worker: SQS batches in, partial batch failures out.

Lambda's event source mapping hands the function a batch of SQS messages. Each record runs
through the same handler and runner as the local worker (functions/worker/main.py, runner.py),
all of them at once on one event loop kept for the container's life, at most
``CHARLA_WORKER_CONCURRENCY`` at a time. The answer names only the records to deliver again
(``batchItemFailures``; the mapping needs ``ReportBatchItemFailures`` on), so one bad job does
not bring back the others:

- done: not reported; Lambda deletes the message; so is a copy of a delivery another message
  carries (a platform delivering one event twice), which is not run (shared/queue/dedup.py);
- to retry (the platform or the model server failing): reported, and made visible again after
  the backoff; the attempt number is SQS's receive count, and after the queue's
  ``maxReceiveCount`` receives SQS moves the message to the dead-letter queue;
- given up (a permanent error, or the last of ``CHARLA_JOB_MAX_ATTEMPTS`` failing, after the
  apology): sent to the dead-letter queue with its error, not reported.

A job that runs again posts nothing twice: every post is claimed in the outbox first
(shared/queue/outbox.py). Records still running when the invocation nears its timeout are
handed back.

Two more events, for operators and a schedule: ``{"charla": "migrate"}`` applies the database
migrations (the functions reach the database; operators often cannot), and
``{"charla": "housekeeping"}`` or an EventBridge scheduled event removes what is past retention
(shared/retention.py), as the local worker does every ten minutes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from functions import platforms
from functions.lambda_app import database, settings
from functions.worker.runner import Handler, Runner
from shared.errors import StorageError
from shared.queue.jobs import Job
from shared.queue.sqs import SqsBatch, SqsQueue, job_from_record

log = logging.getLogger(__name__)

MARGIN_S = 5.0  # handed back this long before the invocation's timeout

_state: dict[str, Any] = {}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The worker function's entry: an SQS batch, or one of the operators' events."""
    if "Records" in event:
        return _loop().run_until_complete(run_batch(event["Records"], context))
    action = event.get("charla")
    if action is None and event.get("detail-type") == "Scheduled Event":
        action = "housekeeping"
    if action == "migrate":
        return _loop().run_until_complete(_migrate())
    if action == "housekeeping":
        return _loop().run_until_complete(_housekeeping())
    log.warning("worker invoked with an event it does not know (keys: %s)", sorted(event))
    return {"error": "unknown event"}


async def run_batch(records: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    s = settings()
    queue, handle = _runtime()
    batch = SqsBatch(queue)
    runner = Runner(batch, handle, max_attempts=s.job_max_attempts, backoff_s=s.job_backoff_s)
    slots = asyncio.Semaphore(s.worker_concurrency)

    async def run(job: Job) -> None:
        async with slots:
            await runner.run_one(job)

    keys = database().keys
    jobs = [job_from_record(record, keys) for record in records]
    try:
        # A platform's second delivery of one event travels in a message of its own.
        fresh = await queue.first_deliveries(jobs)
    except StorageError as exc:
        log.error("cannot check the batch's deliveries (%s); all %d delivered again",
                  exc, len(jobs))
        return {"batchItemFailures": [{"itemIdentifier": job.id} for job in jobs]}
    tasks = {asyncio.create_task(run(job)): job for job in fresh}
    pending: set[asyncio.Task[None]] = set()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=_time_left(context))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in pending:
        log.warning("job %s still running as the invocation ends; handed back", tasks[task].id)
        await batch.release(tasks[task])
    failures = list(dict.fromkeys(batch.failures))
    if failures:
        log.info("%d of %d jobs to run again", len(failures), len(jobs))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _time_left(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return max(1.0, float(remaining()) / 1000 - MARGIN_S)


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop for the container's life: the pool and clients stay bound to it."""
    if "loop" not in _state:
        _state["loop"] = asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = _state["loop"]
    return loop


def _runtime() -> tuple[SqsQueue, Handler]:
    """The queue and the job handler, built on the first batch."""
    if "runtime" not in _state:
        from functions.lambda_app import on_close
        from functions.worker.main import build_handler

        s, db = settings(), database()
        handle, closers = build_handler(s, db)
        # What each platform records beside a delivery (Slack: the thread asked in) is
        # written as the batch's deliveries are recorded.
        queue = SqsQueue(s.sqs_queue_url, db.keys, db=db,
                         on_accept=platforms.on_accept(platforms.everyone()))
        on_close(*closers, queue.close)
        _state["runtime"] = (queue, handle)
    runtime: tuple[SqsQueue, Handler] = _state["runtime"]
    return runtime


async def _migrate() -> dict[str, Any]:
    from shared.migrate import migrate

    database()  # refuses a missing DATABASE_URL
    url = settings().database_url
    assert url is not None
    applied = await migrate(url.reveal())
    log.info("applied %d migrations: %s", len(applied), ", ".join(applied) or "none pending")
    return {"applied": applied}


async def _housekeeping() -> dict[str, Any]:
    from shared import retention

    policy = retention.Policy.from_settings(settings(), with_deliveries=platforms.kept())
    removed = await retention.purge(database(), policy)
    log.info("housekeeping: removed %s", retention.describe(removed))
    return {"removed": removed}


def close() -> None:
    """Close what this container opened, on its loop (tests end a 'container' with this)."""
    from functions.lambda_app import aclose

    loop = _state.pop("loop", None)
    _state.clear()
    if loop is not None:
        loop.run_until_complete(aclose())
        loop.close()
