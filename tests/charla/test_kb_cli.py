"""``charla ingest`` and friends, run as a user would, against the real model server and
Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.charla.test_cli import charla
from tests.conftest import Api, fresh_database


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
