from __future__ import annotations

import asyncio

import psycopg

from shared.migrate import available, migrate


def test_migration_files_are_numbered_and_unique() -> None:
    versions = [v for v, _ in available()]
    assert versions, "no migrations found"
    assert len({v[:4] for v in versions}) == len(versions)
    assert versions == sorted(versions)


async def test_applying_twice_and_concurrently_is_safe(postgres) -> None:  # type: ignore[no-untyped-def]
    url = postgres.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migrate_twice")
        conn.execute("CREATE DATABASE migrate_twice")
    fresh = url.replace("/charla?", "/migrate_twice?")
    results = await asyncio.gather(*(migrate(fresh) for _ in range(4)))
    applied = [r for r in results if r]
    # Exactly one of the concurrent runs did the work; the others found it done.
    assert len(applied) == 1
    assert applied[0] == [v for v, _ in available()]
    assert await migrate(fresh) == []
    with psycopg.connect(fresh) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert count is not None and count[0] == len(available())
        assert ext.fetchone() is not None
