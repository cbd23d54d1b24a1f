"""A record of every message the worker posts, written before it is posted.

Platforms offer no idempotency key for posting a message, so a send that is retried (a job run
again after a crash, a timeout, an error) could post the same answer twice. The worker claims a
part of an answer here first: a part already ``sent`` is edited instead of posted again; a part
left ``sending`` (the request went out and no answer came back) may have been posted: where
the platform can be asked (functions/worker/capabilities.py's ``Finds``: Slack), the worker
looks for it there, and records it or posts it; elsewhere it is not posted again.

A ``sending`` row's ``ref`` is NULL, or :data:`STREAMING` for a part claimed as the start of a
stream: a stream carries nothing to be found by (Slack's ``chat.startStream`` takes no
metadata), so such a part whose fate is unknown is never looked for, nor posted again.

It lives with the queues (shared/queue/): both deliver a job at least once, and this record is
what makes running one again safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from shared.db import Database

# The ref of a ``sending`` row claimed for a stream's start (never a platform's id: those are
# only stored with ``sent``).
STREAMING = "(stream starting)"


@dataclass(frozen=True)
class Claim:
    """What the record says about a part before posting it."""

    new: bool  # nobody posted it yet: post it now
    ref: str | None = None  # it was posted: this is the platform's id, edit it
    stream: bool = False  # its fate is unknown and it was a stream's start: leave it
    age_s: float = 0.0  # seconds since it was claimed (or last changed)


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, delivery: str, part: int, *, stream: bool = False) -> Claim:
        """Claim ``part`` before posting it (``stream``: before starting it as a stream)."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO outbound_messages (delivery, part, state, ref) VALUES (%s, %s,"
                " 'sending', %s) ON CONFLICT (delivery, part) DO NOTHING RETURNING 1",
                (delivery, part, STREAMING if stream else None))
            if await cur.fetchone() is not None:
                return Claim(new=True)
            cur = await conn.execute(
                "SELECT state, ref, extract(epoch FROM now() - updated_at)::float8 AS age"
                " FROM outbound_messages WHERE delivery = %s AND part = %s",
                (delivery, part))
            row = await cur.fetchone()
        assert row is not None
        if row["state"] == "sent":
            return Claim(new=False, ref=str(row["ref"]))
        return Claim(new=False, stream=row["ref"] == STREAMING, age_s=cast(float, row["age"]))

    async def posting(self, delivery: str, part: int) -> None:
        """A part claimed for a stream is posted instead (the stream was refused)."""
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE outbound_messages SET ref = NULL, updated_at = now() WHERE"
                " delivery = %s AND part = %s AND state = 'sending'", (delivery, part))

    async def sent(self, delivery: str, part: int, ref: str) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE outbound_messages SET state = 'sent', ref = %s, updated_at = now()"
                " WHERE delivery = %s AND part = %s", (ref, delivery, part))

    async def parts(self, delivery: str) -> dict[int, str | None]:
        """Every part recorded for ``delivery``: its platform id, or None while its post's
        fate is unknown."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT part, state, ref FROM outbound_messages WHERE delivery = %s",
                (delivery,))
            rows = await cur.fetchall()
        return {cast(int, r["part"]): str(r["ref"]) if r["state"] == "sent" else None for r in rows}

    async def deleted(self, delivery: str, part: int) -> None:
        """The part's message was deleted: a later, longer answer may post it afresh."""
        async with self._db.connection() as conn:
            await conn.execute(
                "DELETE FROM outbound_messages WHERE delivery = %s AND part = %s",
                (delivery, part))

    async def not_sent(self, delivery: str, part: int) -> None:
        """The platform refused the post: the part may be posted again."""
        async with self._db.connection() as conn:
            await conn.execute(
                "DELETE FROM outbound_messages WHERE delivery = %s AND part = %s"
                " AND state = 'sending'", (delivery, part))
