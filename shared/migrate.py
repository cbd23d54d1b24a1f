"""Numbered SQL migrations, applied in order at start; safe to run twice and concurrently.

Every run takes one transaction-scoped advisory lock, so concurrent starters queue behind it
and find the work done; each file is applied in that same transaction with its version row,
so a failed file leaves nothing half-applied.
"""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg

from shared.errors import StorageError

log = logging.getLogger(__name__)

_LOCK_KEY = 0x63686172  # "char": one lock id for Charla's migrations in this database
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available() -> list[tuple[str, str]]:
    """(version, SQL) for every migration file, in order."""
    found = []
    for entry in resources.files("shared.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conninfo: str) -> list[str]:
    """Apply pending migrations; return the versions this call applied."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=10)
        async with conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            applied = []
            for version, sql in available():
                if version in done:
                    continue
                log.info("applying migration %s", version)
                await conn.execute(sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                )
                applied.append(version)
            return applied
    except psycopg.OperationalError as exc:
        raise StorageError("cannot reach the database to migrate it") from exc
