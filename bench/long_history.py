"""Where the time goes when a client sends a long history: the API against its engine's work.

A request of 1,000 one-word messages once took 75 s. This part sends 10, 200 and 998 short
messages through the API (whole answers, 8 tokens, nothing cached) and reads, from the
engine's own counters (llama-server's ``/metrics``: seconds spent reading prompts and writing
tokens), how much of each request's time the engine spent. What is left is ours: the API's
checks, fitting the history to the window, the gateway, and a refit when the engine counts
more tokens than the estimate. Then the same client's next question (the whole history again,
the answer, one more message): what the engine still had to read shows whether the history was
cut where it was cut before, so that the engine's cached prefix held.
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import procs

SIZES = (10, 200, 998)  # 998: its next question is 1,000 messages, the most a request takes
WORDS = ("hola", "mundo", "casa", "perro", "gato", "sol", "mar", "luz")
_COUNTERS = ("llamacpp:prompt_seconds_total", "llamacpp:tokens_predicted_seconds_total",
             "llamacpp:prompt_tokens_total")


def _engine_counters(engine: str) -> dict[str, float]:
    text = httpx.get(engine + "/metrics", timeout=10).text
    return {line.split()[0]: float(line.split()[-1]) for line in text.splitlines()
            if line.split() and line.split()[0] in _COUNTERS}


def _history(size: int) -> list[dict[str, str]]:
    # A number in each message: no two histories share a prefix the engine could reuse.
    nonce = secrets.token_hex(3)
    return [{"role": "user", "content": f"{WORDS[i % len(WORDS)]} {nonce}{i}"}
            for i in range(size)]


def _ask(api: str, token: str, engine: str, messages: list[dict[str, str]]
         ) -> dict[str, float]:
    size = len(messages)
    before = _engine_counters(engine)
    started = time.perf_counter()
    response = httpx.post(api + "/v1/chat/completions", timeout=900,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"messages": messages, "max_tokens": 8, "temperature": 0})
    wall = time.perf_counter() - started
    response.raise_for_status()
    after = _engine_counters(engine)
    engine_s = sum(after[k] - before.get(k, 0.0) for k in _COUNTERS[:2])
    return {"messages": size, "wall_s": wall, "engine_s": engine_s,
            "prompt_tokens": after[_COUNTERS[2]] - before.get(_COUNTERS[2], 0.0),
            "ours_s": wall - engine_s}


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys, database: Any) -> None:
    print("== a long history: the API's time against its engine's", flush=True)
    from functions.api.auth import client_signer
    from shared.settings import Settings

    pg, database_url = database(logdir, "pgdata-long-history")
    secret = secrets.token_urlsafe(48)
    token = client_signer(Settings.from_env({"CHARLA_API_JWT_SECRET": secret})).sign(
        "bench", ttl_s=3600)
    try:
        with ExitStack() as stack:
            gw, engine = stack.enter_context(procs.gateway(keys, logdir, home="gateway-long"))
            api = stack.enter_context(procs.functions_app(keys, gw, database_url, secret,
                                                          logdir))
            rows = []
            for size in SIZES:
                history = _history(size)
                first = _ask(api, token, engine, history)
                # The client's next question: the whole history again, the answer, one more.
                following = [*history, {"role": "assistant", "content": "vale"},
                             {"role": "user", "content": "y ahora, ¿qué?"}]
                rows.append({**first, "next": _ask(api, token, engine, following)})
            out["long_history"] = rows
    finally:
        pg.stop()


def report_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["A long history through the API (whole answers of 8 tokens, no prompt cached): the "
             "request's time, and the engine's own time reading the prompt and writing the "
             "answer (llama-server's /metrics):", "",
             "| messages | prompt tokens the engine read | request | engine | the rest (ours) "
             "| next question: tokens read, request |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        nxt = r["next"]
        lines.append(f"| {r['messages']} | {r['prompt_tokens']:.0f} | {r['wall_s']:.2f} s | "
                     f"{r['engine_s']:.2f} s | {r['ours_s']:.2f} s | "
                     f"{nxt['prompt_tokens']:.0f}, {nxt['wall_s']:.2f} s |")
    return lines
