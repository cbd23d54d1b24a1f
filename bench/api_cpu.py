"""The API's own CPU per token, streamed and whole, against a stand-in engine.

The API (functions/api) sits in front of the gateway: it checks the client's token, fits the
prompt, asks the gateway, checks the answer against the moderation policy as it streams,
forwards the events and records the exchange. On a host where it shares the cores with the
engine, every microsecond it spends per token is taken from the engine. Against the stand-in
(bench/standin_engine.py, which computes nothing) the API process's CPU time is the whole
story; the gateway's, measured in the same requests, is the figure to compare it with.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from bench.gateway_cpu import ROUNDS, TOKENS, cpu_table, measure, standin_binary


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys, database: Any) -> None:
    print("== the API's CPU per token, against a stand-in engine", flush=True)
    from functions.api.auth import client_signer
    from shared.settings import Settings

    pg, database_url = database(logdir, "pgdata-api-cpu")
    secret = secrets.token_urlsafe(48)
    token = client_signer(Settings.from_env({"CHARLA_API_JWT_SECRET": secret})).sign(
        "bench", ttl_s=3600)
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(
                procs.gateway(keys, logdir, engine=standin_binary(logdir), home="gateway-api"))
            api = stack.enter_context(procs.functions_app(keys, gw, database_url, secret,
                                                          logdir))
            counted = {"api": procs.process_serving(api), "gateway": procs.process_serving(gw)}
            out["api_cpu"] = asyncio.run(
                measure({"api": (api, {"Authorization": f"Bearer {token}"}, counted)}))
    finally:
        pg.stop()


def report_lines(data: dict[str, Any]) -> list[str]:
    return cpu_table(f"API CPU per token against a stand-in engine behind the real gateway "
                     f"({TOKENS} tokens per chat; process CPU time over {ROUNDS} rounds, the "
                     "same requests for both processes):", data)
