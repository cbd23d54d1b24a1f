"""Encryption at rest: what sealing adds to storing a turn and to loading a 50-turn history.

Measured side by side with the clear path, on the embedded Postgres:

- the cryptography alone: sealing one exchange (the question and the answer, two turns) and
  opening a 50-turn history, with the key ring read from a key file as ``charla up`` runs it
  (one ``stat`` per seal) and from ``CHARLA_DATA_KEYS``;
- through the database, as the worker does it: ``Conversations.add_exchange`` against the same
  insert with the text in clear, and ``Conversations.recent_turns(limit=50)`` on a sealed
  conversation against one stored in clear (the code reads both).

Turns are 300 (question) and 900 (answer) characters of Spanish and English. Each figure is
the p50 and p95 of ``RUNS`` timed runs after warm-up; database runs alternate sealed and clear.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

RUNS = 2000
DB_RUNS = 400
HISTORY = 50
_TEXT = ("¿Quién aprueba los gastos de viaje? Your manager first, then finance for anything "
         "over 1,000 euros; keep the receipts and file them within 30 days, por favor. ")
QUESTION = (_TEXT * 3)[:300]
ANSWER = (_TEXT * 8)[:900]


def _stats(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"p50_us": statistics.median(ordered) * 1e6,
            "p95_us": ordered[int(len(ordered) * 0.95) - 1] * 1e6}


def _timed(work: Any, runs: int = RUNS) -> dict[str, float]:
    for _ in range(runs // 10):
        work()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return _stats(seconds)


def crypto_alone(key_file: Path) -> dict[str, Any]:
    from shared.conversations import turn_aad, turn_text
    from shared.crypto import KeyRing
    from shared.keyfile import create_key_file, encode_key, read_key_file

    create_key_file(key_file)
    from_file = KeyRing.from_file(key_file)
    keys, current = read_key_file(key_file)
    from_env = KeyRing.from_settings(_settings({"CHARLA_DATA_KEYS":
                                                f"{current}:{encode_key(keys[current])}"}))
    rows = []
    for n in range(HISTORY):
        role, text = ("user", QUESTION) if n % 2 == 0 else ("assistant", ANSWER)
        delivery = f"Ev{n // 2}"
        rows.append({"conversation_id": 7, "role": role, "delivery_id": delivery,
                     "content": None,
                     "content_sealed": from_file.seal(text, turn_aad(7, role, delivery))})

    def seal_exchange(ring: KeyRing) -> None:
        ring.seal(QUESTION, turn_aad(7, "user", "Ev1"))
        ring.seal(ANSWER, turn_aad(7, "assistant", "Ev1"))

    return {
        "seal_exchange_file": _timed(lambda: seal_exchange(from_file)),
        "seal_exchange_env": _timed(lambda: seal_exchange(from_env)),
        "open_history": _timed(lambda: [turn_text(from_file, r) for r in rows], RUNS // 4),
    }


def _settings(env: dict[str, str]) -> Any:
    from shared.settings import Settings

    return Settings.from_env(env)


async def through_database(url: str, key_file: Path) -> dict[str, Any]:
    from shared.conversations import Conversations
    from shared.db import Database, make_pool

    db = Database(make_pool(_settings({"DATABASE_URL": url,
                                       "CHARLA_DATA_KEY_FILE": str(key_file)})))
    conversations = Conversations(db)

    async def add_clear(key: str, delivery: str) -> None:
        # add_exchange as it was before sealing: the same statements, the text in clear.
        async with db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO conversations (platform, key) VALUES ('bench', %s)"
                " ON CONFLICT (platform, key) DO UPDATE SET updated_at = now() RETURNING id",
                (key,))
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO turns (conversation_id, role, author, content, delivery_id)"
                " VALUES (%(c)s, 'user', 'U1', %(q)s, %(d)s), (%(c)s, 'assistant', NULL,"
                " %(r)s, %(d)s) ON CONFLICT (conversation_id, delivery_id, role) DO NOTHING",
                {"c": row["id"], "q": QUESTION, "r": ANSWER, "d": delivery})

    async def add_sealed(key: str, delivery: str) -> None:
        await conversations.add_exchange("bench", key, delivery_id=delivery, author="U1",
                                         question=QUESTION, answer=ANSWER)

    try:
        for n in range(HISTORY // 2):
            await add_sealed("history-sealed", f"Ev{n}")
            await add_clear("history-clear", f"Ev{n}")
        stored: dict[str, list[float]] = {"sealed": [], "clear": []}
        loaded: dict[str, list[float]] = {"sealed": [], "clear": []}
        for run in range(DB_RUNS + DB_RUNS // 10):
            for side, add in (("sealed", add_sealed), ("clear", add_clear)):
                key = f"{side}-{uuid.uuid4().hex[:8]}"
                started = time.perf_counter()
                await add(key, "Ev1")
                stored_s = time.perf_counter() - started
                started = time.perf_counter()
                turns = await conversations.recent_turns("bench", f"history-{side}",
                                                         limit=HISTORY)
                loaded_s = time.perf_counter() - started
                assert len(turns) == HISTORY
                if run >= DB_RUNS // 10:
                    stored[side].append(stored_s)
                    loaded[side].append(loaded_s)
    finally:
        await db.close()
    return {"store_exchange": {s: _stats(v) for s, v in stored.items()},
            "load_history": {s: _stats(v) for s, v in loaded.items()}}


def run(out: dict[str, Any], logdir: Path) -> None:
    from charla.pg import EmbeddedPostgres
    from shared.migrate import migrate

    print("== encryption at rest: a stored exchange, a 50-turn history", flush=True)
    key_file = logdir / "bench-data-keys.json"
    key_file.unlink(missing_ok=True)
    data = {"crypto": crypto_alone(key_file)}
    pg = EmbeddedPostgres(logdir / "pg-encryption")
    url = pg.start()
    try:
        asyncio.run(migrate(url))
        data["database"] = asyncio.run(through_database(url, key_file))
    finally:
        pg.stop()
    out["encryption"] = data


def report_lines(data: dict[str, Any]) -> list[str]:
    c, d = data["crypto"], data["database"]

    def us(r: dict[str, float]) -> str:
        return f"{r['p50_us']:.1f} µs | {r['p95_us']:.1f} µs"

    def ms(r: dict[str, float]) -> str:
        return f"{r['p50_us'] / 1000:.3f} ms | {r['p95_us'] / 1000:.3f} ms"

    return [
        f"Encryption at rest (AES-256-GCM), turns of {len(QUESTION)} and {len(ANSWER)} "
        f"characters, {RUNS:,} runs ({DB_RUNS} through the database, sealed and clear "
        "alternating):", "",
        "| what | p50 | p95 |", "|---|---|---|",
        f"| seal one exchange (2 turns), keys from the key file | {us(c['seal_exchange_file'])} |",
        f"| seal one exchange (2 turns), keys from CHARLA_DATA_KEYS | "
        f"{us(c['seal_exchange_env'])} |",
        f"| open a {HISTORY}-turn history | {us(c['open_history'])} |",
        f"| store an exchange, sealed (add_exchange) | {ms(d['store_exchange']['sealed'])} |",
        f"| store an exchange, in clear | {ms(d['store_exchange']['clear'])} |",
        f"| load {HISTORY} turns, sealed (recent_turns) | {ms(d['load_history']['sealed'])} |",
        f"| load {HISTORY} turns, in clear | {ms(d['load_history']['clear'])} |",
    ]


def main() -> None:
    import tempfile

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run(out, Path(tmp))
    print("\n".join(report_lines(out["encryption"])))


if __name__ == "__main__":
    main()
