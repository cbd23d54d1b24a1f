"""Slack threads the bot was asked in: known once a question there is accepted, not answered."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from functions.slack import threads
from shared import retention
from shared.conversations import Conversations
from shared.db import Database
from shared.queue.postgres import PgQueue
from tests.conftest import fresh_database


@pytest.fixture(scope="module")
def own_url(pg_url: str) -> str:
    return fresh_database(pg_url)  # the bots' workers, running for other tests, take jobs too


@pytest.fixture
def db(own_db: Database) -> Database:
    return own_db


def question(platform: str = "slack", thread: str | None = None) -> dict[str, object]:
    """A job's payload as a webhook queues it (the text and reply_to are sealed)."""
    return {"platform": platform, "delivery_id": f"Ev{uuid.uuid4().hex[:12]}",
            "conversation": thread or f"T1:C{uuid.uuid4().hex[:8]}:1718000100.000200",
            "user": "T1:U1", "text": "hi", "reply_to": {}}


def queue(db: Database) -> PgQueue:
    """The queue as the functions app builds it: Slack's thread marks written on accepting."""
    return PgQueue(db, on_accept=(threads.MARK_THREAD,))


async def accept(db: Database, payload: dict[str, object]) -> bool:
    return await queue(db).enqueue("answer", payload,
                                   dedup=(str(payload["platform"]), str(payload["delivery_id"])))


async def test_a_thread_is_known_as_soon_as_a_question_in_it_is_accepted(db: Database) -> None:
    payload = question()
    thread = str(payload["conversation"])
    assert not await threads.known(db, thread)
    assert await accept(db, payload)
    assert await threads.known(db, thread)  # nothing answered, nothing stored
    assert not await threads.known(db, thread + "1")


async def test_only_a_digest_is_stored_and_a_redelivery_or_a_follow_up_marks_it_once(
    db: Database, own_url: str
) -> None:
    payload = question()
    thread = str(payload["conversation"])
    await accept(db, payload)
    assert not await accept(db, payload)  # a redelivery
    await accept(db, question(thread=thread))  # another question in the thread
    with psycopg.connect(own_url) as conn:
        rows = conn.execute("SELECT digest FROM slack_threads WHERE digest = ANY(%s)",
                            (db.keys.digests(thread),)).fetchall()
    assert len(rows) == 1
    assert thread.encode() not in bytes(rows[0][0])


async def test_two_questions_in_one_thread_in_one_batch(db: Database) -> None:
    thread = question()["conversation"]
    accepting = queue(db)
    results = await asyncio.gather(*(
        accepting.enqueue("answer", p, dedup=("slack", str(p["delivery_id"])))
        for p in (question(thread=str(thread)) for _ in range(5))))
    assert results == [True] * 5
    assert await threads.known(db, str(thread))


async def test_other_platforms_mark_nothing(db: Database, own_url: str) -> None:
    payload = question("telegram", thread="12345")
    with psycopg.connect(own_url) as conn:
        [(before,)] = conn.execute("SELECT count(*) FROM slack_threads").fetchall()
        await accept(db, payload)
        [(after,)] = conn.execute("SELECT count(*) FROM slack_threads").fetchall()
    assert before == after


async def test_a_stored_conversation_is_known_too(db: Database) -> None:
    # A thread answered before marks were kept, whose conversation is still kept.
    thread = f"T1:C{uuid.uuid4().hex[:8]}:1718000100.000200"
    await Conversations(db).add_exchange("slack", thread, delivery_id="Ev1", author="T1:U1",
                                         question="q", answer="a")
    assert await threads.known(db, thread)
    assert not await threads.known(db, f"T1:C{uuid.uuid4().hex[:8]}:1")


async def test_marks_go_with_the_remembered_deliveries(db: Database, own_url: str) -> None:
    old, recent = question(), question()
    await accept(db, old)
    await accept(db, recent)
    with psycopg.connect(own_url, autocommit=True) as conn:
        conn.execute("UPDATE slack_threads SET asked_at = now() - interval '8 days'"
                     " WHERE digest = ANY(%s)", (db.keys.digests(str(old["conversation"])),))
    policy = retention.Policy(conversation_days=0, audit_days=30, job_days=7,
                              with_deliveries=(threads.MARKS_KEPT,))
    assert (await retention.due(db, policy))["Slack thread marks"] == 1
    await retention.purge(db, policy)
    assert not await threads.known(db, str(old["conversation"]))
    assert await threads.known(db, str(recent["conversation"]))
