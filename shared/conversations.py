"""Stored conversations of the chat platforms: load the recent turns, add an exchange, forget.

A conversation is keyed by its platform and a platform-specific key (a Slack thread, a
Telegram chat or topic, a Discord channel and user). Each exchange is stored once per
delivery, so a job that runs again after storing its turns does not store them twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from shared.chat import Message
from shared.db import Database
from shared.knowledge.store import vector_literal

if TYPE_CHECKING:
    import numpy as np  # annotations only: the webhook functions load this module


@dataclass(frozen=True)
class Turn:
    id: int
    message: Message


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
                "SELECT t.id, t.role, t.content FROM turns t JOIN conversations c"
                " ON c.id = t.conversation_id WHERE c.platform = %s AND c.key = %s"
                " ORDER BY t.id DESC LIMIT %s", (platform, key, limit))
            rows = await cur.fetchall()
        return [Turn(cast(int, r["id"]), cast(Message, {"role": r["role"],
                                                         "content": r["content"]}))
                for r in reversed(rows)]

    async def recall(self, platform: str, key: str, vector: np.ndarray, *, before_id: int,
                     k: int = 3, max_distance: float = 0.185) -> list[tuple[str, str]]:
        """Earlier exchanges of this conversation only (turns older than ``before_id``) whose
        question is closest in meaning to ``vector``: (question, answer) pairs, oldest first."""
        async with self._db.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            cur = await conn.execute(
                "WITH c AS (SELECT id FROM conversations WHERE platform = %(p)s AND key = %(k)s),"
                " near AS MATERIALIZED (SELECT t.id, t.delivery_id, t.content,"
                " t.embedding <=> %(v)s::vector AS distance FROM turns t, c"
                " WHERE t.conversation_id = c.id AND t.role = 'user' AND t.id < %(before)s"
                " AND t.embedding IS NOT NULL ORDER BY t.embedding <=> %(v)s::vector"
                " LIMIT %(n)s)"
                " SELECT near.id, near.content AS question, a.content AS answer FROM near"
                " JOIN turns a ON a.delivery_id = near.delivery_id AND a.role = 'assistant'"
                " AND a.conversation_id = (SELECT id FROM c)"
                " WHERE near.distance <= %(max)s ORDER BY near.id",
                {"p": platform, "k": key, "v": vector_literal(vector), "before": before_id,
                 "n": k, "max": max_distance})
            rows = await cur.fetchall()
        return [(str(r["question"]), str(r["answer"])) for r in rows]

    async def exists(self, platform: str, key: str) -> bool:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM conversations WHERE platform = %s AND key = %s",
                (platform, key))
            return await cur.fetchone() is not None

    async def add_exchange(self, platform: str, key: str, *, delivery_id: str, author: str,
                           question: str, answer: str,
                           embedding: np.ndarray | None = None) -> None:
        """Store a question and its answer (once per delivery); ``embedding``, the question's
        vector, lets :meth:`recall` find it later."""
        async with self._db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO conversations (platform, key) VALUES (%s, %s)"
                " ON CONFLICT (platform, key) DO UPDATE SET updated_at = now()"
                " RETURNING id", (platform, key))
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO turns (conversation_id, role, author, content, delivery_id,"
                " embedding) VALUES (%(c)s, 'user', %(a)s, %(q)s, %(d)s, %(e)s::vector),"
                " (%(c)s, 'assistant', NULL, %(r)s, %(d)s, NULL)"
                " ON CONFLICT (conversation_id, delivery_id, role) DO NOTHING",
                {"c": row["id"], "a": author, "q": question, "r": answer, "d": delivery_id,
                 "e": vector_literal(embedding) if embedding is not None else None})

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
