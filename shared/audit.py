"""The audit log of API exchanges: who asked what, what was answered, what it cost.

Operators read it to audit usage; ``CHARLA_AUDIT_RETENTION_DAYS`` bounds how long it is kept
(0 keeps usage figures but no message bodies). Purging deletes in small batches so it never
holds long locks on a live table.

Personal data and credentials in the bodies are replaced by placeholders before they are
stored (shared/redact.py). The bodies (the request's messages and the answer) are sealed
together with the database's data keys (shared/crypto.py), bound to the client that asked;
rows stored before sealing existed keep them in clear until ``charla keys rotate`` seals them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from shared.chat import Message
from shared.crypto import KeyRing, sealed_key_id
from shared.db import Database
from shared.redact import redact, redact_messages

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


def _redacted(exchange: Exchange) -> tuple[list[Message], str | None]:
    """The bodies as the audit log may keep them (CPU work: run off the event loop)."""
    messages = cast(list[Message], redact_messages(exchange.messages))
    return messages, redact(exchange.answer) if exchange.answer is not None else None


def body_aad(client: str) -> bytes:
    """What an exchange's sealed bodies are bound to: the client that asked."""
    return b"api_exchanges\0" + client.encode()


def seal_bodies(keys: KeyRing, client: str, messages: list[Message] | None,
                answer: str | None) -> bytes:
    return keys.seal(json.dumps({"messages": messages, "answer": answer}, ensure_ascii=False),
                     body_aad(client))


def open_bodies(keys: KeyRing, row: Mapping[str, Any]) -> tuple[list[Message] | None, str | None]:
    """The messages and answer of a stored exchange (``client``, ``body_sealed``,
    ``request_messages``, ``answer`` columns): opened, or as stored in clear."""
    sealed = row["body_sealed"]
    if sealed is None:
        return row["request_messages"], row["answer"]
    body = json.loads(keys.open(bytes(sealed), body_aad(str(row["client"]))))
    return cast(list[Message] | None, body["messages"]), cast(str | None, body["answer"])


async def record_exchange(db: Database, exchange: Exchange, *, keep_bodies: bool) -> None:
    """Store one exchange; bodies only when retention allows them, with personal data and
    credentials redacted (shared/redact.py), then sealed."""
    sealed = None
    if keep_bodies:
        messages, answer = await asyncio.to_thread(_redacted, exchange)
        sealed = seal_bodies(db.keys, exchange.client, messages, answer)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO api_exchanges (client, model, stream, body_sealed, key_id,"
            " finish_reason, prompt_tokens, completion_tokens, first_token_ms, latency_ms,"
            " status, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                exchange.client, exchange.model, exchange.stream,
                sealed, sealed_key_id(sealed) if sealed is not None else None,
                exchange.finish_reason, exchange.prompt_tokens, exchange.completion_tokens,
                exchange.first_token_ms, exchange.latency_ms, exchange.status, exchange.error,
            ),
        )
