"""The audit trail of moderation: one row per withheld message or answer, never its text.

Operators see who tripped which check and how often (``GET /metrics`` counts the rows); the
text stays out, so the log holds nothing the policy was written to keep out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from shared.db import Database


@dataclass(frozen=True)
class ModerationEvent:
    platform: str  # slack | telegram | discord | api
    principal: str  # the most specific scope: "slack:T1:C2", "api:CLIENT"
    subject: str  # who: "platform:user id" ("slack:U123", "api:CLIENT"), as limits know them
    stage: str  # input | output
    source: str  # policy | classifier
    categories: tuple[str, ...]


async def record_event(db: Database, event: ModerationEvent) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO moderation_events (platform, principal, subject, stage, source,"
            " categories) VALUES (%s, %s, %s, %s, %s, %s)",
            (event.platform, event.principal, event.subject, event.stage, event.source,
             list(event.categories)))


async def event_counts(db: Database) -> dict[tuple[str, str], int]:
    """How many events there are by (stage, source)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT stage, source, count(*) AS n FROM moderation_events GROUP BY stage, source")
        rows = await cur.fetchall()
    return {(str(r["stage"]), str(r["source"])): cast(int, r["n"]) for r in rows}
