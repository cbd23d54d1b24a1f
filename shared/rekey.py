"""Re-sealing stored message bodies under the current data key, while the stack serves traffic.

``charla keys rotate`` makes a new key current and then calls :func:`reseal`. Each table is
walked by primary key in short transactions of ``batch`` rows, taken ``FOR UPDATE SKIP
LOCKED`` so that nothing waits on a row another transaction holds; rows stored in clear before
sealing existed are sealed on the way. A second walk takes what the first skipped. Last, each
table is locked against writes for a moment (``SHARE ROW EXCLUSIVE``: reads go on) so that a
row some process sealed with the old key just before the switch, and wrote just after, is
committed and found: after that, every process seals with the new key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from psycopg.types.json import Jsonb

from shared.audit import open_bodies, seal_bodies
from shared.conversations import turn_aad, turn_text
from shared.crypto import KeyRing, sealed_key_id
from shared.db import AsyncConn, Database
from shared.queue.jobs import SEALED_FIELDS, open_payload, seal_payload

Progress = Callable[[str, int], None]
LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class Sealed:
    """A table with sealed bodies: what to read of a row, and its new values once re-sealed."""

    table: str
    columns: str  # selected for each row; ``id`` first
    has_body: str  # SQL: the row holds a body, sealed or in clear
    reseal: Callable[[KeyRing, dict[str, Any]], dict[str, Any]]


def _turn(keys: KeyRing, row: dict[str, Any]) -> dict[str, Any]:
    blob = keys.seal(turn_text(keys, row),
                     turn_aad(row["conversation_id"], row["role"], row["delivery_id"]))
    return {"content": None, "content_sealed": blob, "key_id": sealed_key_id(blob)}


def _exchange(keys: KeyRing, row: dict[str, Any]) -> dict[str, Any]:
    blob = seal_bodies(keys, row["client"], *open_bodies(keys, row))
    return {"request_messages": None, "answer": None, "body_sealed": blob,
            "key_id": sealed_key_id(blob)}


def _job(keys: KeyRing, row: dict[str, Any]) -> dict[str, Any]:
    readable, blob = seal_payload(keys, row["kind"], open_payload(keys, row))
    assert blob is not None  # has_body: the payload holds a field that is sealed
    return {"payload": Jsonb(readable), "sealed": blob, "key_id": sealed_key_id(blob)}


TABLES = (
    Sealed("turns", "id, conversation_id, role, delivery_id, content, content_sealed",
           "(content_sealed IS NOT NULL OR content IS NOT NULL)", _turn),
    Sealed("api_exchanges", "id, client, request_messages, answer, body_sealed",
           "(body_sealed IS NOT NULL OR request_messages IS NOT NULL OR answer IS NOT NULL)",
           _exchange),
    Sealed("jobs", "id, kind, payload, sealed",
           f"(sealed IS NOT NULL OR payload ?| ARRAY[{', '.join(map(repr, SEALED_FIELDS))}])",
           _job),
)
# Under another key, or in clear; "<" and ">" rather than "<>" so that the key_id index serves.
_STALE = "(key_id IS NULL OR key_id < %(current)s OR key_id > %(current)s)"


async def _one_batch(conn: AsyncConn, keys: KeyRing, spec: Sealed, current: str, after: int,
                     batch: int, *, skip_locked: bool) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {spec.columns} FROM {spec.table} WHERE id > %(after)s"  # noqa: S608
        f" AND {_STALE} AND {spec.has_body} ORDER BY id LIMIT %(n)s FOR UPDATE"
        + (" SKIP LOCKED" if skip_locked else ""),
        {"after": after, "current": current, "n": batch})
    rows = [dict(r) for r in await cur.fetchall()]
    if rows:
        updates = [{**spec.reseal(keys, row), "id": row["id"]} for row in rows]
        names = [name for name in updates[0] if name != "id"]
        async with conn.cursor() as many:
            await many.executemany(
                f"UPDATE {spec.table} SET "  # noqa: S608
                + ", ".join(f"{name} = %({name})s" for name in names)
                + " WHERE id = %(id)s", updates)
    return rows


async def _walk(db: Database, spec: Sealed, current: str, batch: int,
                progress: Progress, done: int) -> int:
    after = 0
    while True:
        async with db.connection() as conn, conn.transaction():
            rows = await _one_batch(conn, db.keys, spec, current, after, batch, skip_locked=True)
        if not rows:
            return done
        after, done = int(rows[-1]["id"]), done + len(rows)
        progress(spec.table, done)


async def _sweep(db: Database, spec: Sealed, current: str, batch: int) -> int:
    """What is left, with writes to the table held back until it is done."""
    done = 0
    async with db.connection() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await conn.execute(f"LOCK TABLE {spec.table} IN SHARE ROW EXCLUSIVE MODE")
        after = 0
        while rows := await _one_batch(conn, db.keys, spec, current, after, batch,
                                       skip_locked=False):
            after, done = int(rows[-1]["id"]), done + len(rows)
    return done


async def reseal(db: Database, *, batch: int = 500,
                 progress: Progress | None = None) -> dict[str, int]:
    """Re-seal every body not under the current key (and seal those in clear); return the
    number of rows re-sealed per table."""
    current = db.keys.require()
    report = progress or (lambda _table, _n: None)
    counts = {}
    for spec in TABLES:
        done = await _walk(db, spec, current, batch, report, 0)
        done = await _walk(db, spec, current, batch, report, done)  # what the first skipped
        done += await _sweep(db, spec, current, batch)
        counts[spec.table] = done
    return counts


async def usage(db: Database) -> dict[str, dict[str | None, int]]:
    """Rows with a body per table and key id (``None``: stored in clear)."""
    out: dict[str, dict[str | None, int]] = {}
    async with db.connection() as conn:
        for spec in TABLES:
            cur = await conn.execute(
                f"SELECT key_id, count(*) AS n FROM {spec.table} WHERE"  # noqa: S608
                f" {spec.has_body} GROUP BY key_id ORDER BY key_id")
            out[spec.table] = {cast(str | None, r["key_id"]): cast(int, r["n"])
                               for r in await cur.fetchall()}
    return out


async def sealed_with(db: Database, key_id: str) -> dict[str, int]:
    """How many rows of each table a key still seals (tables with none left out)."""
    out = {}
    async with db.connection() as conn:
        for spec in TABLES:
            cur = await conn.execute(
                f"SELECT count(*) AS n FROM {spec.table} WHERE key_id = %s",  # noqa: S608
                (key_id,))
            row = await cur.fetchone()
            if row and row["n"]:
                out[spec.table] = cast(int, row["n"])
    return out
