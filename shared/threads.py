"""Slack threads the bot was asked in: there a reply without a mention is answered too.

A thread is marked as soon as a question in it is accepted, not when its answer is stored: a
follow-up written while the first answer is still being written is answered, and so is one
where no conversation is kept (``CHARLA_CONVERSATION_RETENTION_DAYS=0``). The local queue marks
it in the statement that records the delivery (shared/queue.py); on SQS, where the webhook
holds no database, the worker marks it as it records the delivery, before answering
(shared/sqs_queue.py). Only a keyed digest of the thread is stored, and only for
``CHARLA_JOB_RETENTION_DAYS`` after its last question (shared/retention.py); a thread whose
conversation is kept longer stays known through it.

This module imports no database driver: the webhooks' cold path on SQS loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.crypto import KeyRing

if TYPE_CHECKING:
    from shared.db import Database

PLATFORM = "slack"


def mark(keys: KeyRing, payload: dict[str, Any]) -> bytes | None:
    """The mark of the thread a queued job's question was asked in; None if not Slack's."""
    conversation = payload.get("conversation")
    if payload.get("platform") != PLATFORM or not isinstance(conversation, str):
        return None
    return keys.digest(conversation)


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
