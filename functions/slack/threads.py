"""Slack threads the bot was asked in: there a reply without a mention is answered too.

A thread is marked as soon as a question in it is accepted, not when its answer is stored: a
follow-up written while the first answer is still being written is answered, and so is one
where no conversation is kept (``CHARLA_CONVERSATION_RETENTION_DAYS=0``). The mark is written
by :data:`MARK_THREAD`, which the composition layer hands the queue (functions/app.py,
functions/lambda_app.py, functions/worker/lambda_handler.py): the statement that records a
delivery (shared/queue/dedup.py) writes it too, at the webhook on the local queue, in the worker
on SQS (where the webhook holds no database), before answering. Only a keyed digest of the
thread is stored, and only for ``CHARLA_JOB_RETENTION_DAYS`` after its last question
(:data:`MARKS_KEPT`, which the composition layer puts in the retention policy:
functions/worker/, charla/privacy.py); a thread whose conversation is kept longer stays known
through it.

This module imports no database driver: the webhooks' cold path on SQS loads it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from shared.crypto import KeyRing
from shared.queue.dedup import Delivery, OnAccept
from shared.retention import Rule

if TYPE_CHECKING:
    from shared.db import Database

PLATFORM = "slack"


def mark(keys: KeyRing, payload: dict[str, Any]) -> bytes | None:
    """The mark of the thread a queued job's question was asked in; None if not Slack's."""
    conversation = payload.get("conversation")
    if payload.get("platform") != PLATFORM or not isinstance(conversation, str):
        return None
    return keys.digest(conversation)


def _thread(keys: KeyRing, delivery: Delivery) -> dict[str, Any]:
    digest = mark(keys, delivery.payload)
    return {"slack_thread": base64.b64encode(digest).decode() if digest else None}


# Each Slack question accepted marks its thread, in the statement that accepts it.
MARK_THREAD = OnAccept(
    columns="slack_thread text",
    values=_thread,
    sql="INSERT INTO slack_threads (digest) SELECT DISTINCT decode(slack_thread, 'base64') AS d"
        " FROM accepted WHERE slack_thread IS NOT NULL"
        " ORDER BY d ON CONFLICT (digest) DO UPDATE SET asked_at = now()",  # in order: no deadlock
)

# The marks go with the remembered deliveries: CHARLA_JOB_RETENTION_DAYS after the thread's
# last question (shared/retention.py; the composition layer puts this in the policy).
MARKS_KEPT = Rule(
    "Slack thread marks",
    "SELECT digest FROM slack_threads WHERE asked_at < now() - make_interval(days => %(days)s)",
    "DELETE FROM slack_threads WHERE digest IN ({rows})", key="digest",
)


async def known(db: Database, key: str) -> bool:
    """Whether the bot was asked in the thread ``key`` (its conversation key): marked, or
    with a stored conversation (kept for ``CHARLA_CONVERSATION_RETENTION_DAYS``)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM slack_threads WHERE digest = ANY(%s))"
            " OR EXISTS (SELECT 1 FROM conversations WHERE platform = %s AND key = %s)"
            " AS known", (db.keys.digests(key), PLATFORM, key))
        row = await cur.fetchone()
    return bool(row and row["known"])
