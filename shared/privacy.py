"""Everything stored about one person: export it, or forget it in one transaction.

A person is a platform and that platform's id for them: ``slack`` + a user id, ``telegram`` +
a user id, ``discord`` + a user id, ``api`` + a token's subject. :data:`TABLES` says, for every
table the migrations create, what it holds about people and how it is found: a new table
holding user data that is not listed here fails ``tests/privacy/test_user_data.py``.

Stored about a person:
- ``turns``: what they wrote (``author``), the answers to it (the assistant turn of the same
  delivery), and the vectors kept for recalling them (long-term memory);
- ``conversations``: a conversation left without turns once theirs are gone;
- ``jobs``: queued or finished jobs carrying their message;
- ``api_exchanges``: the audit log of their API requests (as client);
- ``moderation_events``: moderation decisions about their messages (no bodies);
- rate-limit and token-budget counters (Redis), keyed by ``platform:id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.audit import open_bodies
from shared.conversations import turn_text
from shared.crypto import KeyRing
from shared.db import Database
from shared.queue.jobs import open_payload

log = logging.getLogger(__name__)

PLATFORMS = ("slack", "telegram", "discord", "api")
API_LIMIT_PREFIX = "charla-api"  # the API's own request limit (functions/limit.py)

# Every table: what it holds about people. "person" tables are exported and cleared by
# export()/forget(); "none" tables hold nothing that identifies or quotes a person.
TABLES: dict[str, str] = {
    "turns": "person: their messages, the answers to them, and the memory vectors",
    "conversations": "person: emptied conversations go with their last turn",
    "jobs": "person: queued and finished jobs carry the message and the user id",
    "api_exchanges": "person: the audit log of an API client's requests",
    "moderation_events": "person: moderation decisions about a person's messages, no body",
    "inbound_deliveries": "none: platform delivery ids (and, on SQS, the send carrying each),"
                          " for de-duplication",
    "outbound_messages": "none: ids of messages posted, keyed by delivery id",
    "slack_threads": "none: keyed digests of Slack threads the bot was asked in, so that"
                     " replies there are answered without a mention",
    "collections": "none: knowledge-base collections",
    "documents": "none: the team's documents",
    "chunks": "none: passages of the team's documents",
    "collection_grants": "none: which chat, team or client may read (or write) a collection",
    "schema_migrations": "none: applied migration numbers",
    "forgotten": "none: keyed digests of people who asked to be forgotten, for 15 days, so that"
                 " their messages still queued then store nothing",
}


class UnknownPlatform(ValueError):
    pass


@dataclass(frozen=True)
class Person:
    platform: str
    id: str

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise UnknownPlatform(f"platform must be one of {', '.join(PLATFORMS)}")
        if not self.id.strip():
            raise ValueError("a user id is required")

    @property
    def sub(self) -> str:
        """How the model server and the rate limits know them."""
        return f"{self.platform}:{self.id}"


async def _existing(conn: Any) -> set[str]:
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return {str(r["table_name"]) for r in await cur.fetchall()}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, (bytes, memoryview)):
            continue  # sealed bodies are opened by their module, never exported raw
        out[key] = value
    return out


# The person's rows, per table; %(p)s is the platform, %(u)s the user id, %(s)s the subject.
_MINE = {
    "turns": (
        "SELECT t.id FROM turns t JOIN conversations c ON c.id = t.conversation_id"
        " WHERE c.platform = %(p)s AND EXISTS (SELECT 1 FROM turns q WHERE"
        " q.conversation_id = t.conversation_id AND q.delivery_id = t.delivery_id"
        " AND q.role = 'user' AND q.author = %(u)s)"),
    "jobs": "SELECT id FROM jobs WHERE payload->>'platform' = %(p)s AND payload->>'user' = %(u)s",
    "api_exchanges": "SELECT id FROM api_exchanges WHERE %(p)s = 'api' AND client = %(u)s",
    "moderation_events": "SELECT id FROM moderation_events WHERE subject = %(s)s",
}


def _params(person: Person) -> dict[str, str]:
    return {"p": person.platform, "u": person.id, "s": person.sub}


def _opened(keys: KeyRing, table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row with its sealed body opened into the columns it stands for."""
    if table == "turns":
        row["content"] = turn_text(keys, row)
    elif table == "api_exchanges":
        row["request_messages"], row["answer"] = open_bodies(keys, row)
    elif table == "jobs":
        row["payload"] = open_payload(keys, row)
    for sealed in ("content_sealed", "body_sealed", "sealed", "key_id", "embedding"):
        row.pop(sealed, None)
    return row


async def export(db: Database, person: Person, *,
                 counters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every stored record about ``person`` as JSON-ready data, bodies opened."""
    out: dict[str, Any] = {"platform": person.platform, "user": person.id}
    async with db.connection() as conn:
        present = await _existing(conn)
        for table, mine in _MINE.items():
            if table not in present:
                continue
            cur = await conn.execute(
                f"SELECT * FROM {table} WHERE id IN ({mine}) ORDER BY id",  # noqa: S608
                _params(person))
            rows = [_opened(db.keys, table, dict(r)) for r in await cur.fetchall()]
            out[table] = [_jsonable(r) for r in rows]
    if "turns" in out:
        out["memory_entries"] = sum(1 for t in out["turns"] if t.get("role") == "user")
    out["rate_limit_counters"] = counters or {}
    return out


async def forget(db: Database, person: Person, *, keep_job: str | None = None) -> dict[str, int]:
    """Delete every stored record about ``person``, in one transaction; how many of each.
    ``keep_job``: the job running this request, deleted once it has answered."""
    removed: dict[str, int] = {}
    async with db.connection() as conn, conn.transaction():
        present = await _existing(conn)
        cur = await conn.execute(
            "SELECT DISTINCT c.id FROM conversations c JOIN turns t ON t.conversation_id = c.id"
            " WHERE c.platform = %(p)s AND t.role = 'user' AND t.author = %(u)s",
            _params(person))
        theirs = [r["id"] for r in await cur.fetchall()]
        for table, mine in _MINE.items():
            if table not in present:
                continue
            # On SQS the job is not a row here (its id is a message id): nothing to keep.
            keeping = table == "jobs" and keep_job is not None and keep_job.isdigit()
            cur = await conn.execute(
                f"DELETE FROM {table} WHERE id IN ({mine})"  # noqa: S608
                + (" AND id <> %(keep)s" if keeping else ""),
                {**_params(person), "keep": int(keep_job) if keeping and keep_job else 0})
            removed[table] = cur.rowcount
        # A conversation left empty goes too: its key can name them (a private chat's id).
        cur = await conn.execute(
            "DELETE FROM conversations c WHERE c.id = ANY(%s) AND NOT EXISTS"
            " (SELECT 1 FROM turns t WHERE t.conversation_id = c.id)", (theirs,))
        removed["conversations"] = cur.rowcount
        # Their messages still on the way (in SQS, or being answered) store nothing after this
        # (Conversations.add_exchange checks); a digest, not their id, and only for a while.
        if "forgotten" in present:
            await conn.execute(
                "INSERT INTO forgotten (digest) VALUES (%s) ON CONFLICT (digest)"
                " DO UPDATE SET forgotten_at = now()", (db.keys.digest(person.sub),))
    return removed


class Counters:
    """Rate-limit and token-budget counters for a subject in the limits' storage (Redis)."""

    def __init__(self, storage_uri: str) -> None:
        self._uri = storage_uri

    def _client(self) -> Any:
        if not self._uri.startswith(("redis://", "rediss://")):
            return None  # counted in memory: nothing stored to export or forget
        import redis

        return redis.Redis.from_url(self._uri, socket_timeout=2)

    def _keys(self, client: Any, person: Person) -> list[bytes]:
        # The limits library keys counters as .../<prefix>/<subject>/<amount>/...: the model
        # server's quota knows everyone as platform:id, the API's own limit knows an API
        # client by its bare token subject under the charla-api prefix.
        patterns = [f"*/{_glob(person.sub)}/*"]
        if person.platform == "api":
            patterns.append(f"*/{API_LIMIT_PREFIX}/{_glob(person.id)}/*")
        return sorted({k for p in patterns for k in client.scan_iter(match=p, count=500)})

    def export(self, person: Person) -> dict[str, Any]:
        client = self._client()
        if client is None:
            return {}
        with client:
            return {k.decode(): _value(client, k) for k in self._keys(client, person)}

    def forget(self, person: Person) -> int:
        """Delete their counters; how many there were."""
        client = self._client()
        if client is None:
            return 0
        from shared.ratelimit import FORGETS_KEY

        with client:
            # Counted first: a gateway's charges for them still in memory, or for an answer
            # still being written, are then never written back (shared/ratelimit.py).
            client.incr(FORGETS_KEY)
            keys = self._keys(client, person)
            return int(client.delete(*keys)) if keys else 0


def _glob(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)


def _value(client: Any, key: bytes) -> Any:
    kind = client.type(key).decode()
    if kind == "string":
        raw = client.get(key)
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if kind == "zset":
        return {"entries": client.zcard(key)}
    if kind == "list":
        return {"entries": client.llen(key)}
    return {"type": kind}


def summary(person: Person, removed: dict[str, int]) -> str:
    """One line for ``charla user forget`` and the admin route."""
    parts = [f"{n} {table.replace('_', ' ')}" for table, n in removed.items() if n]
    if not parts:
        return f"nothing stored about {person.sub}; nothing removed"
    return f"removed for {person.sub}: " + ", ".join(parts)


async def forget_everything(db: Database, storage_uri: str, person: Person, *,
                            keep_job: str | None = None) -> dict[str, int]:
    """:func:`forget` and the person's rate-limit counters: what a user's own request does.
    The log line names the platform and the counts, never the person."""
    removed = await forget(db, person, keep_job=keep_job)
    removed["rate_limit_counters"] = await asyncio.to_thread(
        Counters(storage_uri).forget, person)
    log.info("%s user forgotten: %s", person.platform,
             ", ".join(f"{n} {t}" for t, n in removed.items() if n) or "nothing stored")
    return removed
