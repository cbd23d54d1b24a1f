"""``charla backup`` and ``charla restore``, run as an operator would: a stack's home with its
embedded server running (as under ``charla up``), backed up, restored into a new home."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest

from charla.backup import running
from charla.home import ensure_api_secret, ensure_data_keys, ensure_service_keys
from charla.pg import EmbeddedPostgres
from shared.conversations import Conversations
from shared.crypto import KeyRing
from shared.db import Database, make_pool
from shared.errors import UnknownKey
from shared.keyfile import read_key_file
from shared.knowledge.store import Grant, KnowledgeStore, NewChunk
from shared.migrate import migrate
from shared.settings import Settings
from tests.conftest import fresh_database

CHARLA = [sys.executable, "-c", "from charla.cli import main; main()"]
PASSPHRASE = "correct horse battery staple"
QUESTION = "Where do I file my travel expenses?"
ANSWER = "In the finance portal, under Travel."
CHUNK_TEXT = "Everyone gets twenty-three working days of vacation a year."
KEY_FILES = ("data-keys.json", "service_ed25519.pem", "service_ed25519.pub", "api_jwt_secret")


def charla(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``charla`` with only the settings given: none of this machine's own leak in."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("CHARLA_") and k != "DATABASE_URL"}
    return subprocess.run([*CHARLA, *args], env={**clean, **env}, text=True,
                          capture_output=True, timeout=120, check=False)


@dataclass
class Source:
    home: Path
    url: str


async def _fill(url: str, home: Path) -> None:
    settings = Settings.from_env({"DATABASE_URL": url,
                                  "CHARLA_DATA_KEY_FILE": str(home / "data-keys.json")})
    db = Database(make_pool(settings))
    try:
        await Conversations(db).add_exchange("slack", "T1:C1:1.0", delivery_id="d1",
                                             author="U1", question=QUESTION, answer=ANSWER)
        store = KnowledgeStore(db)
        hr = await store.ensure_collection("hr", model="multilingual-e5-small", dimensions=384)
        vector = np.linspace(-1, 1, 384, dtype=np.float32)
        await store.put_document(hr, source="policies/vacation.md", title="Vacation",
                                 media_type="text/markdown", content_hash="h1", size=60,
                                 chunks=[NewChunk(0, "Days", None, CHUNK_TEXT, "english", vector)])
        await store.grant("hr", "slack:T1:C1")
        await store.grant("hr", "api:ci", write=True)
    finally:
        await db.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A stack's home, its server running as under ``charla up``, with a conversation, a
    document and grants in its database."""
    home = tmp_path_factory.mktemp("source") / ".charla"
    pg = EmbeddedPostgres(home / "pgdata")
    url = pg.start()
    ensure_data_keys(home)
    ensure_service_keys(home)
    ensure_api_secret(home)
    asyncio.run(migrate(url))
    asyncio.run(_fill(url, home))
    yield Source(home, url)
    pg.stop()


@pytest.fixture(scope="module")
def backup_file(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("backups") / "stack.charla"
    done = charla("backup", str(target), CHARLA_HOME=str(source.home),
                  CHARLA_BACKUP_PASSPHRASE=PASSPHRASE)
    assert done.returncode == 0, done.stderr
    assert f"to {target}" in done.stdout
    assert running(source.home / "pgdata")  # joined, not stopped: the stack goes on serving
    return target


def restore(file: Path, home: Path, *extra: str,
            passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess[str]:
    return charla("restore", str(file), *extra, CHARLA_HOME=str(home),
                  CHARLA_BACKUP_PASSPHRASE=passphrase)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("charla: ")
    return line


async def _read_back(url: str, keys: KeyRing) -> tuple[list[str], list[str], list[Grant]]:
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": url})), keys)
    try:
        turns = [m["content"] for m in await Conversations(db).recent("slack", "T1:C1:1.0")]
        async with db.connection() as conn:
            cur = await conn.execute("SELECT c.content FROM chunks c JOIN documents d ON"
                                     " d.id = c.document_id WHERE d.source = %s",
                                     ("policies/vacation.md",))
            chunks = [str(r["content"]) for r in await cur.fetchall()]
        return turns, chunks, await KnowledgeStore(db).grants()
    finally:
        await db.close()


def test_round_trip_restores_conversations_documents_and_grants(
        source: Source, backup_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "new" / ".charla"  # a new home: nothing there yet
    done = restore(backup_file, home)
    assert done.returncode == 0, done.stderr
    for name in KEY_FILES:
        assert (home / name).read_bytes() == (source.home / name).read_bytes()
        assert oct((home / name).stat().st_mode)[-3:] == "600"
    pg = EmbeddedPostgres(home / "pgdata")  # what charla up starts in that home
    url = pg.start()
    try:
        assert asyncio.run(migrate(url)) == []  # every migration is there already
        keys = KeyRing.from_file(home / "data-keys.json")
        turns, chunks, grants = asyncio.run(_read_back(url, keys))
        assert turns == [QUESTION, ANSWER]
        assert chunks == [CHUNK_TEXT]
        assert grants == [Grant("hr", "api:ci", True), Grant("hr", "slack:T1:C1", False)]
        # The bodies came back sealed: without the restored keys they do not open.
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM turns WHERE content IS NULL AND"
                                " content_sealed IS NOT NULL").fetchone() == (2,)
        other = KeyRing({"other": bytes(32)})
        with pytest.raises(UnknownKey):
            asyncio.run(_read_back(url, other))
    finally:
        pg.stop()


def test_a_stopped_stack_is_started_for_the_dump_and_stopped_again(
        backup_file: Path, tmp_path: Path) -> None:
    home = tmp_path / ".charla"
    assert restore(backup_file, home).returncode == 0
    assert not running(home / "pgdata")
    line = one_line_error(restore(backup_file, home))  # its database is not replaced unasked
    assert line.startswith(f"charla: {home} holds a database already: ") and "--force" in line
    again = tmp_path / "again.charla"
    done = charla("backup", str(again), CHARLA_HOME=str(home),
                  CHARLA_BACKUP_PASSPHRASE=PASSPHRASE)
    assert done.returncode == 0, done.stderr
    assert not running(home / "pgdata")
    restored = restore(again, tmp_path / "third" / ".charla")
    assert restored.returncode == 0, restored.stderr


def test_the_file_is_private_and_shows_nothing_in_clear(source: Source,
                                                         backup_file: Path) -> None:
    assert oct(backup_file.stat().st_mode)[-3:] == "600"
    raw = backup_file.read_bytes()
    assert raw.startswith(b"charla-backup\n")
    keys, _ = read_key_file(source.home / "data-keys.json")
    secrets = [*keys.values(), *(base64.b64encode(k) for k in keys.values()),
               (source.home / "api_jwt_secret").read_bytes().strip(),
               (source.home / "data-keys.json").read_bytes()]
    pem = (source.home / "service_ed25519.pem").read_text().splitlines()
    secrets += [line.encode() for line in pem if not line.startswith("-----")]
    for secret in secrets:
        assert secret not in raw
    for text in (QUESTION, ANSWER, CHUNK_TEXT, "vacation", PASSPHRASE):
        assert text.encode() not in raw
    # No clear copy of it was left beside it either (the temporary file is renamed).
    assert [p.name for p in backup_file.parent.iterdir()] == [backup_file.name]


def test_a_wrong_passphrase_is_one_line_and_changes_nothing(backup_file: Path,
                                                            tmp_path: Path) -> None:
    home = tmp_path / ".charla"
    done = restore(backup_file, home, passphrase="not the right passphrase")
    assert one_line_error(done) == f"charla: the passphrase does not open {backup_file}"
    assert "not the right passphrase" not in done.stderr + done.stdout
    assert not home.exists()


def test_a_damaged_file_restores_nothing(backup_file: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.charla"
    raw = bytearray(backup_file.read_bytes())
    raw[-100] ^= 1
    damaged.write_bytes(bytes(raw))
    home = tmp_path / ".charla"
    assert "is damaged or was altered" in one_line_error(restore(damaged, home))
    assert not (home / "pgdata").exists() and not (home / "data-keys.json").exists()
    stranger = tmp_path / "notes.txt"
    stranger.write_text("not a backup at all")
    assert one_line_error(restore(stranger, home)) == f"charla: {stranger} is not a charla backup"


def test_restore_keeps_other_keys_unless_forced(source: Source, backup_file: Path,
                                                tmp_path: Path) -> None:
    home = tmp_path / ".charla"
    home.mkdir(mode=0o700)
    ensure_data_keys(home)  # keys of another stack: rows sealed with them would be lost
    theirs = (home / "data-keys.json").read_bytes()
    line = one_line_error(restore(backup_file, home))
    assert "holds other keys (data-keys.json)" in line and "--force" in line
    assert (home / "data-keys.json").read_bytes() == theirs
    assert not (home / "pgdata").exists()

    forced = restore(backup_file, home, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (home / "data-keys.json").read_bytes() == (source.home / "data-keys.json"
                                                      ).read_bytes()
    assert (home / "data-keys.json.before-restore").read_bytes() == theirs


def test_restore_refuses_a_running_stack(source: Source, backup_file: Path) -> None:
    line = one_line_error(restore(backup_file, source.home, "--force"))
    assert line == f"charla: the stack of {source.home} is running: stop charla up first"
    with psycopg.connect(source.url) as conn:  # still serving, untouched
        assert conn.execute("SELECT count(*) FROM turns").fetchone() == (2,)


def test_backup_never_replaces_a_file_unless_forced(source: Source, tmp_path: Path) -> None:
    target = tmp_path / "stack.charla"
    target.write_bytes(b"an older backup")
    env = {"CHARLA_HOME": str(source.home), "CHARLA_BACKUP_PASSPHRASE": PASSPHRASE}
    line = one_line_error(charla("backup", str(target), **env))
    assert line == f"charla: {target} exists: pass --force to replace it"
    assert target.read_bytes() == b"an older backup"
    assert charla("backup", str(target), "--force", **env).returncode == 0
    assert target.read_bytes().startswith(b"charla-backup\n")


@pytest.mark.parametrize("passphrase", ["", "eleven char"])
def test_an_empty_or_short_passphrase_is_refused(source: Source, tmp_path: Path,
                                                 passphrase: str) -> None:
    target = tmp_path / "stack.charla"
    done = charla("backup", str(target), CHARLA_HOME=str(source.home),
                  CHARLA_BACKUP_PASSPHRASE=passphrase)
    assert one_line_error(done).startswith("charla: the backup passphrase is ")
    assert not target.exists()


def test_a_team_s_own_server_is_dumped_and_its_password_never_shown(
        pg_url: str, tmp_path: Path) -> None:
    """DATABASE_URL with a password (the embedded server trusts its socket, so any works)."""
    password = "s3cret-db-password"
    url = fresh_database(pg_url).replace("postgres:@", f"postgres:{password}@", 1)
    assert password in url
    target = tmp_path / "team.charla"
    done = charla("backup", str(target), DATABASE_URL=url, CHARLA_BACKUP_PASSPHRASE=PASSPHRASE,
                  CHARLA_DATA_KEYS="k1:" + base64.b64encode(bytes(range(32))).decode())
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr and PASSPHRASE not in done.stdout
    restored = restore(target, tmp_path / ".charla")
    assert restored.returncode == 0, restored.stderr
    assert read_key_file(tmp_path / ".charla" / "data-keys.json") == (
        {"k1": bytes(range(32))}, "k1")

    away = url.split("?host=")[0] + f"?host={tmp_path / 'no-server'}"
    failed = charla("backup", str(tmp_path / "x.charla"), DATABASE_URL=away,
                    CHARLA_BACKUP_PASSPHRASE=PASSPHRASE)
    assert "cannot reach the database" in one_line_error(failed)
    assert password not in failed.stderr + failed.stdout
