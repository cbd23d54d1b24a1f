"""A record of every message the worker posts, written before it is posted.

Platforms offer no idempotency key for posting a message, so a send that is retried (a job run
again after a crash, a timeout, an error) could post the same answer twice. The worker claims a
part of an answer here first: a part already ``sent`` is edited instead of posted again; a part
left ``sending`` (the request went out and no answer came back) may have been posted, and is
not posted again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from shared.db import Database


@dataclass(frozen=True)
class Claim:
    """What the record says about a part before posting it."""

    new: bool  # nobody posted it yet: post it now
    ref: str | None = None  # it was posted: this is the platform's id, edit it


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, delivery: str, part: int) -> Claim:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO outbound_messages (delivery, part, state) VALUES (%s, %s,"
                " 'sending') ON CONFLICT (delivery, part) DO NOTHING RETURNING 1",
                (delivery, part))
            if await cur.fetchone() is not None:
                return Claim(new=True)
            cur = await conn.execute(
                "SELECT state, ref FROM outbound_messages WHERE delivery = %s AND part = %s",
                (delivery, part))
            row = await cur.fetchone()
        assert row is not None
        return Claim(new=False, ref=str(row["ref"]) if row["state"] == "sent" else None)

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
