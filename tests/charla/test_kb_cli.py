"""``charla ingest`` and friends, run as a user would, against the real model server and
Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.knowledge.names import RULE
from tests.charla.test_cli import charla
from tests.conftest import Api, free_port, fresh_database


@pytest.fixture
def env(api: Api, pg_url: str, tmp_path: Path) -> dict[str, str]:
    assert api.settings.service_private_key is not None
    return {"DATABASE_URL": fresh_database(pg_url),
            "MODEL_SERVER_URL": api.settings.model_server_url,
            "CHARLA_SERVICE_PRIVATE_KEY": api.settings.service_private_key.reveal(),
            "CHARLA_HOME": str(tmp_path / "home")}


def test_ingest_reingest_prune_list_grant_and_forget(env: dict[str, str],
                                                     tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "policies").mkdir(parents=True)
    (docs / "policies" / "vacation.md").write_text(
        "# Vacation\n\n## Days\n\nEveryone gets 23 working days a year.\n")
    (docs / "wifi.txt").write_text("Guest wifi password: printed at reception.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type")
    (docs / "notes.xyz").write_text("not a document type we read")

    first = charla("ingest", str(docs), "--collection", "hr", "--quiet", env=env)
    assert first.returncode == 1  # one file failed, the others went in
    assert "failed: broken.pdf" in first.stdout + first.stderr
    assert "2 added" in first.stdout and "1 failed" in first.stdout

    again = charla("ingest", str(docs), "--collection", "hr", "--quiet", env=env)
    assert "2 unchanged" in again.stdout

    (docs / "policies" / "vacation.md").write_text(
        "# Vacation\n\n## Days\n\nEveryone gets 25 working days a year.\n")
    (docs / "wifi.txt").unlink()
    (docs / "broken.pdf").unlink()
    pruned = charla("ingest", str(docs), "--collection", "hr", "--prune", "--quiet", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert "1 updated" in pruned.stdout and "1 removed" in pruned.stdout

    listed = charla("collections", env=env)
    assert listed.stdout.startswith("hr\t1 documents\t")
    assert "multilingual-e5-small (384-d)" in listed.stdout

    assert charla("grant", "hr", "slack:T1:C1", env=env).returncode == 0
    assert "hr\tslack:T1:C1" in charla("grants", env=env).stdout
    assert charla("revoke", "hr", "slack:T1:C1", env=env).returncode == 0
    assert charla("revoke", "hr", "slack:T1:C1", env=env).returncode == 1

    reindexed = charla("reindex", "--collection", "hr", env=env)
    assert reindexed.returncode == 0 and "embedded again" in reindexed.stdout

    gone = charla("forget", "--collection", "hr", env=env)
    assert gone.returncode == 0 and "forgot 'hr'" in gone.stdout
    assert "no collections yet" in charla("collections", env=env).stdout
    missing = charla("forget", "--collection", "hr", env=env)
    assert missing.returncode == 2 and "no collection named 'hr'" in missing.stderr


def test_ingest_without_any_file_says_so(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = charla("ingest", str(tmp_path / "empty"), env=env)
    assert done.returncode == 2 and "no supported files" in done.stderr
    missing = charla("ingest", str(tmp_path / "nope"), env=env)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("command", [
    ("ingest", "{docs}", "--collection", "{name}"),
    ("grant", "{name}", "api:ci"),
    ("grant", "{name}", "api:ci", "--write"),
    ("revoke", "{name}", "api:ci"),
    ("forget", "--collection", "{name}"),
    ("reindex", "--collection", "{name}"),
], ids=["ingest", "grant", "grant-write", "revoke", "forget", "reindex"])
def test_a_bad_collection_name_is_one_line_and_exit_2(env: dict[str, str], tmp_path: Path,
                                                      command: tuple[str, ...]) -> None:
    (tmp_path / "a.md").write_text("# A\n\nalpha\n")
    names = ["../x", "a;drop table"] if command[0] != "ingest" else [
        "../x", "a;drop table", "x" * 500, "Upper"]
    for name in names:
        args = [part.format(docs=tmp_path / "a.md", name=name) for part in command]
        done = charla(*args, env=env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("charla: ") and RULE in line
    assert "no collections yet" in charla("collections", env=env).stdout


def test_write_grants_are_created_shown_narrowed_and_revoked(env: dict[str, str]) -> None:
    # A program may not create a collection: a write grant creates it, empty.
    granted = charla("grant", "pub", "api:ci", "--write", env=env)
    assert granted.returncode == 0, granted.stderr
    assert "created the empty collection 'pub'" in granted.stdout
    assert "api:ci may now read and write to 'pub'" in granted.stdout
    assert charla("collections", env=env).stdout.startswith("pub\t0 documents\t")
    assert charla("grant", "pub", "slack:T1", env=env).returncode == 0
    assert charla("grants", env=env).stdout.splitlines() == [
        "pub\tapi:ci\tread+write", "pub\tslack:T1\tread"]
    # A read grant does not take the write grant away; revoke --write does, reading stays.
    assert charla("grant", "pub", "api:ci", env=env).returncode == 0
    assert "pub\tapi:ci\tread+write" in charla("grants", env=env).stdout
    narrowed = charla("revoke", "pub", "api:ci", "--write", env=env)
    assert narrowed.returncode == 0 and "still reads" in narrowed.stdout
    assert "pub\tapi:ci\tread\n" in charla("grants", env=env).stdout
    again = charla("revoke", "pub", "api:ci", "--write", env=env)
    assert again.returncode == 1 and "no write grant" in again.stderr
    assert charla("revoke", "pub", "api:ci", env=env).returncode == 0
    assert charla("grants", env=env).stdout.splitlines() == ["pub\tslack:T1\tread"]
    # A read grant on a collection that does not exist is a typo, not a new collection.
    typo = charla("grant", "pbu", "api:ci", env=env)
    assert typo.returncode == 2 and "no collection named 'pbu'" in typo.stderr


def test_ingest_against_a_model_server_that_is_not_there_says_so_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Aimed at the wrong port, it printed a raw traceback (issue 22)."""
    (tmp_path / "doc.md").write_text("# Doc\n\nEveryone gets 23 working days a year.\n")
    away = {**env, "MODEL_SERVER_URL": f"http://127.0.0.1:{free_port()}"}
    done = charla("ingest", str(tmp_path / "doc.md"), "--collection", "hr", env=away)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "model server" in done.stderr and away["MODEL_SERVER_URL"] in done.stderr
