"""Export and forget one person, over every table that holds user data, through real writes.

Real Postgres (every migration applied) and the real Redis that keeps rate-limit counters.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from shared import privacy, retention
from shared.audit import Exchange, record_exchange
from shared.conversations import Conversations
from shared.db import Database, make_pool
from shared.keyfile import parse_keys
from shared.queue.postgres import PgQueue
from shared.settings import Settings
from tests.conftest import DATA_KEYS, fresh_database, make_settings


@dataclass
class World:
    settings: Settings
    db: Database
    tag: str  # makes every id and text of this test its own


@pytest.fixture
def own_url(pg_url: str) -> str:
    """A database of its own: the jobs planted here must not reach other tests' workers."""
    return fresh_database(pg_url)


@pytest.fixture
async def world(own_url: str, redis_url: str) -> AsyncIterator[World]:
    settings = make_settings(DATABASE_URL=own_url, CHARLA_RATE_LIMIT_STORAGE=redis_url,
                             CHARLA_DATA_KEYS=DATA_KEYS)
    db = Database(make_pool(settings))
    try:
        yield World(settings, db, uuid.uuid4().hex[:8])
    finally:
        await db.close()


def hit_counter(storage_uri: str, sub: str) -> None:
    """A rate-limit counter as the API's limiter and the model server's quota keep them."""
    FixedWindowRateLimiter(storage_from_string(storage_uri)).hit(
        parse("100/minute"), "charla-api", sub)


async def plant(world: World, platform: str, user: str, words: str) -> None:
    """What the product stores about a person who used it once on ``platform``."""
    conversations = Conversations(world.db)
    if platform == "api":
        await record_exchange(world.db, Exchange(
            client=user, model="m", stream=False, status=200, latency_ms=5,
            messages=[{"role": "user", "content": f"{words} question"}],
            answer=f"{words} answer"), keep_bodies=True)
    else:
        delivery = uuid.uuid4().hex
        conversation = f"{world.tag}:{uuid.uuid4().hex[:6]}"
        await conversations.add_exchange(platform, conversation, delivery_id=delivery,
                                         author=user, question=f"{words} question",
                                         answer=f"{words} answer")
        await PgQueue(world.db).enqueue("answer", {
            "platform": platform, "delivery_id": delivery, "conversation": conversation,
            "user": user, "text": f"{words} question", "reply_to": {}}, dedup=(
                platform, delivery))
    hit_counter(world.settings.rate_limit_storage, f"{platform}:{user}")


def test_every_table_is_declared_as_holding_user_data_or_not(pg_url: str) -> None:
    """Fails when a migration adds a table that privacy.TABLES does not account for: a table
    holding user data must be exported and forgotten, one that holds none must say so."""
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'")}
    assert tables - set(privacy.TABLES) == set(), "add them to shared/privacy.py TABLES"
    person_tables = {t for t, what in privacy.TABLES.items() if what.startswith("person")}
    # Every person table is reached by export/forget (conversations through their turns).
    assert person_tables - set(privacy._MINE) == {"conversations"}


@pytest.mark.parametrize("platform", ["slack", "telegram", "discord", "api"])
async def test_export_then_forget_one_person_and_only_them(world: World, platform: str) -> None:
    me = f"{world.tag}:me" if platform == "slack" else f"me-{world.tag}"
    other = f"{world.tag}:other" if platform == "slack" else f"other-{world.tag}"
    await plant(world, platform, me, f"zebra{world.tag}")
    await plant(world, platform, other, f"okapi{world.tag}")
    person = privacy.Person(platform, me)
    counters = privacy.Counters(world.settings.rate_limit_storage)

    data = await privacy.export(world.db, person, counters=counters.export(person))
    text = json.dumps(data, default=str)
    assert text.count(f"zebra{world.tag} question") >= 1
    assert f"zebra{world.tag} answer" in text
    assert f"okapi{world.tag}" not in text
    assert data["rate_limit_counters"], "the person's rate-limit counter is part of the export"
    if platform == "api":
        assert len(data["api_exchanges"]) == 1
    else:
        assert {t["role"] for t in data["turns"]} == {"user", "assistant"}
        assert len(data["jobs"]) == 1

    removed = await privacy.forget_everything(world.db, world.settings.rate_limit_storage,
                                              person)
    assert removed["rate_limit_counters"] == 1
    if platform == "api":
        assert removed["api_exchanges"] == 1
    else:
        assert (removed["turns"], removed["jobs"], removed["conversations"]) == (2, 1, 1)
    again = await privacy.forget_everything(world.db, world.settings.rate_limit_storage, person)
    assert not any(again.values())
    assert "nothing removed" in privacy.summary(person, again)
    # The other person is untouched.
    theirs = json.dumps(await privacy.export(
        world.db, privacy.Person(platform, other),
        counters=counters.export(privacy.Person(platform, other))), default=str)
    assert f"okapi{world.tag} answer" in theirs and "rate_limit_counters\": {}" not in theirs


def test_the_cli_exports_and_forgets(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, "DATABASE_URL": pg_url, "CHARLA_RATE_LIMIT_STORAGE": redis_url,
           "CHARLA_HOME": str(tmp_path), "CHARLA_DATA_KEYS": DATA_KEYS}
    hit_counter(redis_url, f"telegram:{tag}")

    def charla(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from charla.cli import main; main()",
                               *args], env=env, capture_output=True, text=True, timeout=60)

    exported = charla("user", "export", "--platform", "telegram", "--user", tag)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["user"] == tag
    first = charla("user", "forget", "--platform", "telegram", "--user", tag)
    assert first.returncode == 0 and "1 rate limit counters" in first.stdout, first.stdout
    second = charla("user", "forget", "--platform", "telegram", "--user", tag)
    assert "nothing removed" in second.stdout
    bad = charla("user", "forget", "--platform", "irc", "--user", tag)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


async def test_a_message_still_queued_when_its_author_is_forgotten_stores_nothing(
    world: World, own_url: str
) -> None:
    conversations = Conversations(world.db)
    me, other = f"{world.tag}:me", f"{world.tag}:other"
    person = privacy.Person("slack", me)
    chat = f"{world.tag}:C1:1.0"

    async def store(author: str, n: int, asked_at: datetime) -> bool:
        return await conversations.add_exchange(
            "slack", chat, delivery_id=f"Ev{world.tag}{n}", author=author,
            question=f"question {n}", answer=f"answer {n}", asked_at=asked_at)

    queued = await db_now(own_url)  # a message of theirs is queued...
    await privacy.forget_everything(world.db, world.settings.rate_limit_storage, person)
    # ...and answered after they asked to be forgotten: nothing of it is stored again.
    assert await store(me, 1, queued) is False
    assert await store(other, 2, queued) is True  # someone else's, in the same chat
    assert await store(me, 3, await db_now(own_url)) is True  # they talk to us again later
    with psycopg.connect(own_url) as conn:
        rows = conn.execute("SELECT author, delivery_id FROM turns WHERE role = 'user' AND"
                            " delivery_id LIKE %s ORDER BY id", (f"Ev{world.tag}%",)).fetchall()
        forgotten = conn.execute("SELECT digest FROM forgotten").fetchall()
    assert rows == [(other, f"Ev{world.tag}2"), (me, f"Ev{world.tag}3")]
    # What is kept to tell is a keyed digest, not who they are.
    assert len(forgotten) == 1 and me.encode() not in bytes(forgotten[0][0])


async def test_forget_records_match_across_a_key_rotation_and_expire(
    world: World, own_url: str
) -> None:
    me = f"{world.tag}:me"
    person = privacy.Person("slack", me)
    queued = await db_now(own_url)
    await privacy.forget(world.db, person)
    # The ring rotates: a new current key, the old one still there to open and to match.
    new_key = base64.b64encode(os.urandom(32)).decode()
    assert parse_keys(DATA_KEYS)[1] not in ("next", "")
    rotated = Database(make_pool(make_settings(
        DATABASE_URL=own_url, CHARLA_DATA_KEYS=f"next:{new_key},{DATA_KEYS}")))
    try:
        assert rotated.keys.digest(person.sub) != world.db.keys.digest(person.sub)
        assert await Conversations(rotated).add_exchange(
            "slack", f"{world.tag}:C1", delivery_id=f"Ev{world.tag}", author=me,
            question="q", answer="a", asked_at=queued) is False
    finally:
        await rotated.close()
    # Kept 15 days (SQS keeps a message 14 at most), then the retention sweep removes it.
    with psycopg.connect(own_url) as conn:
        conn.execute("UPDATE forgotten SET forgotten_at = now() - interval '16 days'")
    removed = await retention.purge(world.db, retention.Policy.from_settings(world.settings))
    assert removed["forget records"] == 1


async def db_now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    now: datetime = row[0]
    return now
