"""Stored conversations of the chat platforms: load the recent turns, add an exchange, forget.

A conversation is keyed by its platform and a platform-specific key (a Slack thread, a
Telegram chat or topic, a Discord channel and user). Each exchange is stored once per
delivery, so a job that runs again after storing its turns does not store them twice.
"""

from __future__ import annotations

from shared.chat import Message
from shared.db import Database


class Conversations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, platform: str, key: str, *, limit: int = 50) -> list[Message]:
        """The last ``limit`` turns, oldest first."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT t.role, t.content FROM turns t JOIN conversations c"
                " ON c.id = t.conversation_id WHERE c.platform = %s AND c.key = %s"
                " ORDER BY t.id DESC LIMIT %s", (platform, key, limit))
            rows = await cur.fetchall()
        return [{"role": r["role"], "content": r["content"]}  # type: ignore[typeddict-item]
                for r in reversed(rows)]

    async def exists(self, platform: str, key: str) -> bool:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM conversations WHERE platform = %s AND key = %s",
                (platform, key))
            return await cur.fetchone() is not None

    async def add_exchange(self, platform: str, key: str, *, delivery_id: str, author: str,
                           question: str, answer: str) -> None:
        """Store a question and its answer (once per delivery)."""
        async with self._db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO conversations (platform, key) VALUES (%s, %s)"
                " ON CONFLICT (platform, key) DO UPDATE SET updated_at = now()"
                " RETURNING id", (platform, key))
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO turns (conversation_id, role, author, content, delivery_id)"
                " VALUES (%(c)s, 'user', %(a)s, %(q)s, %(d)s),"
                " (%(c)s, 'assistant', NULL, %(r)s, %(d)s)"
                " ON CONFLICT (conversation_id, delivery_id, role) DO NOTHING",
                {"c": row["id"], "a": author, "q": question, "r": answer, "d": delivery_id})

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
