"""A conversation's second turn through the API: time to first token, against the first turn's.

The functions app in front of the gateway, on an embedded Postgres. A conversation of about
1,500 tokens, new to the engine, is answered (cold); then the turn after it, whose prompt starts
with the whole first one, so the engine's prefix cache should make it much quicker (the ratio,
goal 0.10 or less). Three runs; :func:`bench.engines.second_turn` times one.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import engines, procs


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["second_turn"]``."""
    print("== second-turn time to first token through the API", flush=True)
    from charla.pg import EmbeddedPostgres
    from functions.api.auth import client_signer
    from shared.migrate import migrate
    from shared.settings import Settings

    pg = EmbeddedPostgres(logdir / "pgdata")
    database_url = pg.start()
    asyncio.run(migrate(database_url))
    secret = secrets.token_urlsafe(48)
    token = client_signer(Settings.from_env({"CHARLA_API_JWT_SECRET": secret})).sign(
        "bench", ttl_s=3600)
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(procs.gateway(keys, logdir))
            api = stack.enter_context(procs.functions_app(keys, gw, database_url, secret,
                                                          logdir))
            runs = [asyncio.run(engines.second_turn(api, {"Authorization": f"Bearer {token}"}))
                    for _ in range(3)]
        out["second_turn"] = [asdict(r) | {"ratio": r.ratio} for r in runs]
    finally:
        pg.stop()


def report_lines(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | prompt tokens | first turn TTFT | second turn TTFT | ratio |",
             "|---|---|---|---|---|"]
    for i, t in enumerate(runs, 1):
        lines.append(f"| {i} | {t['prompt_tokens']} | {t['first_ms']:.0f} ms | "
                     f"{t['second_ms']:.0f} ms | {t['ratio']:.3f} |")
    return lines
