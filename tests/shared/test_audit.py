from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from shared.audit import purge_exchanges
from shared.db import Database, make_pool
from shared.settings import Settings


def _insert(conn: psycopg.Connection[tuple[object, ...]], client: str, days_old: int,
            n: int) -> None:
    for _ in range(n):
        conn.execute(
            "INSERT INTO api_exchanges (client, model, stream, request_messages, answer,"
            " latency_ms, status, created_at) VALUES (%s, 'm', false, %s, 'an answer', 5, 200,"
            " now() - make_interval(days => %s))",
            (client, Jsonb([{"role": "user", "content": "secret plans"}]), days_old))


async def test_purge_removes_only_expired_rows_in_batches(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM api_exchanges WHERE client LIKE 'purge-%'")
        _insert(conn, "purge-old", 40, 25)
        _insert(conn, "purge-new", 1, 3)
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": pg_url})))
    try:
        removed = await purge_exchanges(db, retention_days=30, batch=10)
        assert removed >= 25
        assert await purge_exchanges(db, retention_days=30, batch=10) == 0
    finally:
        await db.close()
    with psycopg.connect(pg_url) as conn:
        left = conn.execute("SELECT client, count(*) FROM api_exchanges WHERE client LIKE"
                            " 'purge-%' GROUP BY client").fetchall()
    assert left == [("purge-new", 3)]


async def test_retention_zero_keeps_usage_but_no_bodies(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM api_exchanges WHERE client LIKE 'purge-%'")
        _insert(conn, "purge-zero", 0, 4)
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": pg_url})))
    try:
        assert await purge_exchanges(db, retention_days=0, batch=3) >= 4
    finally:
        await db.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT request_messages, answer, latency_ms FROM api_exchanges"
                            " WHERE client = 'purge-zero'").fetchall()
    assert rows == [(None, None, 5)] * 4
