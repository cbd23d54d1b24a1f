"""Stored conversations of the chat platforms: load the recent turns, add an exchange, forget.

A conversation is keyed by its platform and a platform-specific key (a Slack thread, a
Telegram chat or topic, a Discord channel and user). Each exchange is stored once per
delivery, so a job that runs again after storing its turns does not store them twice.

A turn's text is sealed with the database's data keys (shared/crypto.py), bound to its
conversation, role and delivery; turns stored before sealing existed are read in clear until
``charla keys rotate`` seals them. The question's vector stays in clear for recall by meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from shared.chat import Message
from shared.crypto import KeyRing, sealed_key_id
from shared.db import Database
from shared.knowledge.store import vector_literal

if TYPE_CHECKING:
    import numpy as np  # annotations only: the webhook functions load this module


@dataclass(frozen=True)
class Turn:
    id: int
    message: Message


def turn_aad(conversation_id: int, role: str, delivery_id: str) -> bytes:
    """What a turn's sealed text is bound to: moved to another turn, it does not open."""
    return f"turns\0{conversation_id}\0{role}\0{delivery_id}".encode()


def turn_text(keys: KeyRing, row: Mapping[str, Any], prefix: str = "") -> str:
    """The text of a stored turn (``conversation_id``, ``role``, ``delivery_id``, ``content``,
    ``content_sealed`` columns, each name after ``prefix``): opened, or as stored in clear."""
    sealed = row[prefix + "content_sealed"]
    if sealed is None:
        return str(row[prefix + "content"])
    aad = turn_aad(int(row["conversation_id"]), str(row[prefix + "role"]),
                   str(row[prefix + "delivery_id"]))
    return keys.open(bytes(sealed), aad)


class Conversations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, platform: str, key: str, *, limit: int = 50) -> list[Message]:
        """The last ``limit`` turns, oldest first."""
        return [turn.message for turn in await self.recent_turns(platform, key, limit=limit)]

    async def recent_turns(self, platform: str, key: str, *, limit: int = 50) -> list[Turn]:
        """The last ``limit`` turns with their ids, oldest first."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT t.id, t.conversation_id, t.role, t.delivery_id, t.content,"
                " t.content_sealed FROM turns t JOIN conversations c"
                " ON c.id = t.conversation_id WHERE c.platform = %s AND c.key = %s"
                " ORDER BY t.id DESC LIMIT %s", (platform, key, limit), binary=True)
            rows = await cur.fetchall()
        keys = self._db.keys
        return [Turn(cast(int, r["id"]), cast(Message, {"role": r["role"],
                                                         "content": turn_text(keys, r)}))
                for r in reversed(rows)]

    async def recall(self, platform: str, key: str, vector: np.ndarray, *, before_id: int,
                     k: int = 3, max_distance: float = 0.185) -> list[tuple[str, str]]:
        """Earlier exchanges of this conversation only (turns older than ``before_id``) whose
        question is closest in meaning to ``vector``: (question, answer) pairs, oldest first."""
        async with self._db.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            cur = await conn.execute(
                "WITH c AS (SELECT id FROM conversations WHERE platform = %(p)s AND key = %(k)s),"
                " near AS MATERIALIZED (SELECT t.id, t.conversation_id, t.delivery_id,"
                " t.content, t.content_sealed,"
                " t.embedding <=> %(v)s::vector AS distance FROM turns t, c"
                " WHERE t.conversation_id = c.id AND t.role = 'user' AND t.id < %(before)s"
                " AND t.embedding IS NOT NULL ORDER BY t.embedding <=> %(v)s::vector"
                " LIMIT %(n)s)"
                " SELECT near.id, near.conversation_id, 'user' AS q_role,"
                " near.delivery_id AS q_delivery_id, near.content AS q_content,"
                " near.content_sealed AS q_content_sealed, 'assistant' AS a_role,"
                " a.delivery_id AS a_delivery_id, a.content AS a_content,"
                " a.content_sealed AS a_content_sealed FROM near"
                " JOIN turns a ON a.delivery_id = near.delivery_id AND a.role = 'assistant'"
                " AND a.conversation_id = (SELECT id FROM c)"
                " WHERE near.distance <= %(max)s ORDER BY near.id",
                {"p": platform, "k": key, "v": vector_literal(vector), "before": before_id,
                 "n": k, "max": max_distance})
            rows = await cur.fetchall()
        keys = self._db.keys
        return [(turn_text(keys, r, "q_"), turn_text(keys, r, "a_")) for r in rows]

    async def answer_to(self, platform: str, key: str, delivery_id: str) -> str | None:
        """The stored answer to delivery ``delivery_id``, if it was answered and stored."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT t.conversation_id, t.role, t.delivery_id, t.content, t.content_sealed"
                " FROM turns t JOIN conversations c ON c.id = t.conversation_id"
                " WHERE c.platform = %s AND c.key = %s AND t.delivery_id = %s"
                " AND t.role = 'assistant'", (platform, key, delivery_id), binary=True)
            row = await cur.fetchone()
        return turn_text(self._db.keys, row) if row is not None else None

    async def add_exchange(self, platform: str, key: str, *, delivery_id: str, author: str,
                           question: str, answer: str, embedding: np.ndarray | None = None,
                           asked_at: datetime | None = None) -> bool:
        """Store a question and its answer (once per delivery); ``embedding``, the question's
        vector, lets :meth:`recall` find it later. Nothing is stored, and False returned, if
        the author asked to be forgotten at ``asked_at`` or later (shared/privacy.py): their
        message was still queued when they did."""
        async with self._db.connection() as conn, conn.transaction():
            if await self._forgotten(conn, platform, author, asked_at):
                return False
            cur = await conn.execute(
                "INSERT INTO conversations (platform, key) VALUES (%s, %s)"
                " ON CONFLICT (platform, key) DO UPDATE SET updated_at = now()"
                " RETURNING id", (platform, key))
            row = await cur.fetchone()
            assert row is not None
            conversation_id = cast(int, row["id"])
            # Sealed here, just before the insert: a key rotated meanwhile is already in use.
            q = self._db.keys.seal(question, turn_aad(conversation_id, "user", delivery_id))
            r = self._db.keys.seal(answer, turn_aad(conversation_id, "assistant", delivery_id))
            await conn.execute(
                "INSERT INTO turns (conversation_id, role, author, content_sealed, key_id,"
                " delivery_id, embedding) VALUES"
                " (%(c)s, 'user', %(a)s, %(q)s, %(qk)s, %(d)s, %(e)s::vector),"
                " (%(c)s, 'assistant', NULL, %(r)s, %(rk)s, %(d)s, NULL)"
                " ON CONFLICT (conversation_id, delivery_id, role) DO NOTHING",
                {"c": conversation_id, "a": author, "q": q, "qk": sealed_key_id(q), "r": r,
                 "rk": sealed_key_id(r), "d": delivery_id,
                 "e": vector_literal(embedding) if embedding is not None else None})
        return True

    async def forgotten_since(self, platform: str, author: str,
                              asked_at: datetime | None) -> bool:
        """Whether ``author`` asked to be forgotten at ``asked_at`` or later."""
        if asked_at is None:
            return False
        async with self._db.connection() as conn:
            return await self._forgotten(conn, platform, author, asked_at)

    async def _forgotten(self, conn: Any, platform: str, author: str,
                         asked_at: datetime | None) -> bool:
        if asked_at is None:
            return False
        cur = await conn.execute(
            "SELECT 1 FROM forgotten WHERE digest = ANY(%s) AND forgotten_at >= %s",
            (self._db.keys.digests(f"{platform}:{author}"), asked_at))
        return await cur.fetchone() is not None

    async def forget(self, platform: str, key: str) -> int:
        """Delete a conversation and its turns; return how many turns went."""
        async with self._db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM turns WHERE conversation_id IN (SELECT id FROM conversations"
                " WHERE platform = %s AND key = %s)", (platform, key))
            removed = cur.rowcount
            await conn.execute("DELETE FROM conversations WHERE platform = %s AND key = %s",
                               (platform, key))
            return removed
