"""Retention: what is past its time goes in small batches, and --dry-run says what would go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from shared import retention
from shared.audit import Exchange, record_exchange
from shared.conversations import Conversations
from shared.db import Database
from tests.conftest import fresh_database


@pytest.fixture
def own_url(pg_url: str) -> Iterator[str]:
    """A database of its own: the counts below are exact."""
    yield fresh_database(pg_url)


@pytest.fixture
def db(own_db: Database) -> Database:
    return own_db


async def _age(url: str, sql: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql)


async def test_old_turns_audit_rows_and_jobs_go_in_batches_the_recent_stay(
    db: Database, own_url: str
) -> None:
    conversations = Conversations(db)
    for n in range(7):
        await conversations.add_exchange("telegram", f"old-{n}", delivery_id=f"o{n}",
                                         author="u1", question="old question",
                                         answer="old answer")
    await conversations.add_exchange("telegram", "new", delivery_id="n1", author="u1",
                                     question="new question", answer="new answer")
    for client in ("old-client", "old-client", "new-client"):
        await record_exchange(db, Exchange(client=client, model="m", stream=False, status=200,
                                           latency_ms=1, messages=[], answer="a"),
                              keep_bodies=True)
    await _age(own_url, "UPDATE turns SET created_at = now() - interval '100 days' WHERE"
               " conversation_id IN (SELECT id FROM conversations WHERE key LIKE 'old-%')")
    await _age(own_url, "UPDATE conversations SET updated_at = now() - interval '100 days'"
               " WHERE key LIKE 'old-%'")
    await _age(own_url, "UPDATE api_exchanges SET created_at = now() - interval '40 days'"
               " WHERE client = 'old-client'")
    policy = retention.Policy(conversation_days=90, audit_days=30, job_days=7)

    due = await retention.due(db, policy)
    assert due["turns"] == 14 and due["API exchanges"] == 2
    assert due["empty conversations"] == 0  # they empty only once their turns are gone

    done = await retention.purge(db, policy, batch=3)
    assert done["turns"] == 14 and done["empty conversations"] == 7
    assert done["API exchanges"] == 2
    after = await retention.due(db, policy)
    assert not any(after.values())
    assert [m["content"] for m in await conversations.recent("telegram", "new")] == [
        "new question", "new answer"]
    assert retention.describe(after) == "nothing"
    assert "14 turns" in retention.describe(done)


async def test_audit_retention_zero_keeps_usage_but_clears_bodies(db: Database) -> None:
    client = f"zero-{uuid.uuid4().hex[:6]}"
    await record_exchange(db, Exchange(client=client, model="m", stream=False, status=200,
                                       latency_ms=1, messages=[{"role": "user",
                                                                "content": "body"}],
                                       answer="a", completion_tokens=3), keep_bodies=True)
    policy = retention.Policy(conversation_days=90, audit_days=0, job_days=7)
    assert (await retention.due(db, policy))["API exchange bodies"] == 1
    await retention.purge(db, policy)
    assert (await retention.due(db, policy))["API exchange bodies"] == 0
    async with db.connection() as conn:
        cur = await conn.execute("SELECT completion_tokens FROM api_exchanges WHERE client = %s",
                                 (client,))
        assert [r["completion_tokens"] for r in await cur.fetchall()] == [3]
