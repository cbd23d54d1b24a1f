"""What a job is, and how its payload's private fields are sealed: both queues' own.

A :class:`Job` is what the worker runs: a kind (``answer``, ``forget``: functions/messaging.py)
and a payload. A payload's :data:`SEALED_FIELDS` (what people wrote, and where the answer goes)
must not rest or travel in clear: both queues seal the whole payload with the data keys
(shared/crypto.py) and keep only the other fields readable, for operators and their queries;
shared/rekey.py seals them again under a new key. What a queue promises is in
shared/queue/contract.py. This module imports neither psycopg nor an AWS client, so that a
webhook function's cold start pays for neither (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from shared.crypto import KeyRing

# Payload fields stored only sealed: a message's text, and its reply address (Discord's holds
# the interaction token).
SEALED_FIELDS = ("text", "reply_to")


def job_aad(kind: str) -> bytes:
    return b"jobs\0" + kind.encode()


def seal_payload(keys: KeyRing, kind: str, payload: dict[str, Any]
                 ) -> tuple[dict[str, Any], bytes | None]:
    """The payload's readable part, and the whole payload sealed (None when nothing in it
    needs sealing)."""
    if not any(name in payload for name in SEALED_FIELDS):
        return payload, None
    readable = {k: v for k, v in payload.items() if k not in SEALED_FIELDS}
    return readable, keys.seal(json.dumps(payload, ensure_ascii=False), job_aad(kind))


def open_payload(keys: KeyRing, row: dict[str, Any]) -> dict[str, Any]:
    """A stored job's whole payload (``kind``, ``payload``, ``sealed`` columns)."""
    if row["sealed"] is None:
        return cast(dict[str, Any], row["payload"])
    return cast(dict[str, Any], json.loads(keys.open(bytes(row["sealed"]), job_aad(row["kind"]))))


@dataclass(frozen=True)
class Job:
    """A job taken by a worker; ``attempts`` counts this one; ``queued_at`` when it was
    queued, when the queue says."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    queued_at: datetime | None = None
