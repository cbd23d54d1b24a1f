"""The local worker: ``python -m functions.worker`` (``charla up`` starts it).

It answers the jobs the webhooks queue: one process, up to ``CHARLA_WORKER_CONCURRENCY``
answers at once (the engine's parallel slots are the natural figure). SIGTERM or SIGINT stop it
cleanly: nothing new is taken, running answers get a grace period, the rest go back to the
queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from functions.knowledge import Knowledge
from functions.messaging import (
    ANSWER_JOB,
    FORGET_JOB,
    Inbound,
    ReplyChannel,
    forgot_you,
)
from functions.model_client import ModelClient
from functions.platforms import Platforms, enabled, http_client, kept
from functions.worker.answer import Answerer, GiveUp
from functions.worker.reply import ProgressiveReply
from functions.worker.runner import Handler, Worker
from shared import retention
from shared.conversations import Conversations
from shared.db import Database, make_pool
from shared.errors import CharlaError
from shared.logs import configure_logging
from shared.privacy import Person, forget_everything
from shared.queue.jobs import Job
from shared.queue.outbox import Outbox
from shared.queue.postgres import PgQueue
from shared.settings import Settings

log = logging.getLogger(__name__)

PURGE_EVERY_S = 600.0


def make_handler(answerer: Answerer, platforms: Platforms,
                 db: Database | None = None) -> Handler:
    async def handle(job: Job, last: bool) -> None:
        known = (ANSWER_JOB, FORGET_JOB) if db is not None else (ANSWER_JOB,)
        if job.kind not in known:
            raise GiveUp(f"unknown job kind {job.kind!r}")
        inbound = Inbound.from_json(job.payload)
        try:
            channel = platforms.channel(inbound)
        except LookupError as exc:
            raise GiveUp(str(exc)) from None
        if job.kind == FORGET_JOB:
            assert db is not None
            await forget_and_confirm(db, answerer, inbound, channel, job.id)
            return
        await answerer.answer(inbound, channel, attempt=job.attempts, last=last,
                              asked_at=job.queued_at)

    return handle


def build_handler(settings: Settings, db: Database
                  ) -> tuple[Handler, list[Callable[[], Awaitable[None]]]]:
    """The job handler the local worker and the worker function share, and what to close
    when the process ends (the model server's client, the platforms')."""
    model = ModelClient(settings)
    platforms = Platforms(settings, http_client(settings))
    knowledge = Knowledge(db, model, passages=settings.kb_passages,
                          max_distance=settings.kb_max_distance)
    answerer = Answerer(settings=settings, model=model, conversations=Conversations(db),
                        outbox=Outbox(db), knowledge=knowledge)
    on = [name for name, ok in enabled(settings).items() if ok]
    log.info("worker answering for: %s", ", ".join(on) or "no platform (none configured)")
    return make_handler(answerer, platforms, db), [platforms.close, model.close]


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    db = Database(make_pool(settings))
    db.keys.require()  # bodies are never stored in clear: no key, no start
    queue = PgQueue(db, lease_s=settings.job_lease_s)
    handle, closers = build_handler(settings, db)
    worker = Worker(queue, handle, concurrency=settings.worker_concurrency,
                    max_attempts=settings.job_max_attempts, backoff_s=settings.job_backoff_s)
    purger = asyncio.create_task(_purge_forever(db, settings))
    try:
        await worker.run(stop)
    finally:
        purger.cancel()
        await asyncio.gather(purger, return_exceptions=True)
        await queue.close()
        for close in closers:
            await close()
        await db.close()


async def forget_and_confirm(db: Database, answerer: Answerer, inbound: Inbound,
                             channel: ReplyChannel, job_id: str) -> None:
    """A person asked to be forgotten (Slack: "forget me" in a direct message): delete it all
    but this job, say so once (the outbox keeps a rerun from saying it twice), then delete
    this job too: its payload quotes them."""
    person = Person(inbound.platform, inbound.user)
    await forget_everything(db, answerer.settings.rate_limit_storage, person, keep_job=job_id)
    reply = ProgressiveReply(channel, answerer.outbox, f"{inbound.platform}:{inbound.delivery_id}",
                             interval_s=answerer.settings.edit_interval_s)
    await reply.finish(forgot_you(inbound.text))
    await forget_everything(db, answerer.settings.rate_limit_storage, person)


async def _purge_forever(db: Database, settings: Settings) -> None:
    """Remove what is past retention (conversations, the audit log, finished jobs) every few
    minutes, in small batches (shared/retention.py)."""
    policy = retention.Policy.from_settings(settings, with_deliveries=kept())
    while True:
        try:
            removed = await retention.purge(db, policy)
            if any(removed.values()):
                log.info("retention: removed %s", retention.describe(removed))
        except CharlaError as exc:
            log.warning("retention: %s; will retry", exc)
        await asyncio.sleep(PURGE_EVERY_S)


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())
