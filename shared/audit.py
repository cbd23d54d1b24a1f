"""The audit log of API exchanges: who asked what, what was answered, what it cost.

Operators read it to audit usage; ``CHARLA_AUDIT_RETENTION_DAYS`` bounds how long it is kept
(0 keeps usage figures but no message bodies). Purging deletes in small batches so it never
holds long locks on a live table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from shared.chat import Message
from shared.db import Database

log = logging.getLogger(__name__)


@dataclass
class Exchange:
    """One request to the chat API and its outcome."""

    client: str
    model: str
    stream: bool
    messages: list[Message]
    status: int
    latency_ms: int
    answer: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_ms: int | None = None
    error: str | None = None


async def record_exchange(db: Database, exchange: Exchange, *, keep_bodies: bool) -> None:
    """Store one exchange; bodies only when retention allows them."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO api_exchanges (client, model, stream, request_messages, answer,"
            " finish_reason, prompt_tokens, completion_tokens, first_token_ms, latency_ms,"
            " status, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                exchange.client, exchange.model, exchange.stream,
                Jsonb(exchange.messages) if keep_bodies else None,
                exchange.answer if keep_bodies else None,
                exchange.finish_reason, exchange.prompt_tokens, exchange.completion_tokens,
                exchange.first_token_ms, exchange.latency_ms, exchange.status, exchange.error,
            ),
        )


async def purge_exchanges(db: Database, *, retention_days: int, batch: int = 1000) -> int:
    """Delete exchanges older than the retention, ``batch`` rows per statement; return the count.

    With a retention of 0 the rows stay (usage is still audited) and only bodies are cleared.
    """
    total = 0
    while True:
        async with db.connection() as conn:
            if retention_days > 0:
                cur = await conn.execute(
                    "DELETE FROM api_exchanges WHERE id IN (SELECT id FROM api_exchanges"
                    " WHERE created_at < now() - make_interval(days => %s)"
                    " ORDER BY id LIMIT %s)",
                    (retention_days, batch),
                )
            else:
                cur = await conn.execute(
                    "UPDATE api_exchanges SET request_messages = NULL, answer = NULL"
                    " WHERE id IN (SELECT id FROM api_exchanges WHERE request_messages IS NOT"
                    " NULL OR answer IS NOT NULL ORDER BY id LIMIT %s)",
                    (batch,),
                )
        total += cur.rowcount
        if cur.rowcount < batch:
            return total
