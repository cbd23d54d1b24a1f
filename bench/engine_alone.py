"""Throughput through each gateway with the engine on a core of its own
(``bench.run gateways_pinned``).

On the 2-core machines here, llama-server's threads take both cores, and any other process
that runs (a gateway relaying, the client reading) takes a core from one of them; llama.cpp's
threads wait for each other at every step, so the engine loses more than that process's own
CPU. A GPU host computes on the GPU, and its gateway's CPU takes nothing from the engine. So
this part gives the engine one thread on core 0, and the gateways, their clients and this
process core 1: what a gateway then costs in throughput is its relaying alone.

Eight chats at once, 128 tokens each, the engine direct, Charla's gateway and LiteLLM's proxy
taking turns in each round, streamed and whole; the ratio of each to the engine direct in the
same round, and the median over rounds.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import engines, litellm_proxy, procs
from bench.gateways import ENGINE_HTTP

ROUNDS = 8
CHATS = 8
ENGINE_CORE = 0
OTHERS_CORE = 1


def _pin(process: Any, core: int) -> None:
    """``process`` (psutil) and its children on ``core``."""
    for p in (process, *process.children(recursive=True)):
        p.cpu_affinity([core])


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    print("== gateways_pinned: throughput with the engine on a core of its own", flush=True)
    if (os.cpu_count() or 1) < 2:
        out["gateways_pinned"] = {"skipped": "needs two cores"}
        return
    litellm_key = "sk-bench-" + secrets.token_hex(16)
    charla_headers = {"Authorization": f"Bearer {keys.service_token('bench-pinned')}"}
    before = os.sched_getaffinity(0)
    result: dict[str, Any] = {"rounds": ROUNDS, "chats": CHATS}
    try:
        os.sched_setaffinity(0, {OTHERS_CORE})
        litellm_proxy.flush_counters()
        with ExitStack() as stack:
            gw, engine = stack.enter_context(procs.gateway(
                keys, logdir, home="gateway-pinned", CHARLA_ENGINE_THREADS="1", **ENGINE_HTTP))
            ll = stack.enter_context(litellm_proxy.proxy(
                logdir, "pinned", engine, {litellm_key: "bench"}, rpm=1_000_000,
                tpm=1_000_000_000))
            gateway = procs.process_serving(gw)
            _pin(gateway, OTHERS_CORE)
            _pin(procs.process_serving(ll), OTHERS_CORE)
            engine_proc = procs.process_serving(engine)
            engine_proc.cpu_affinity([ENGINE_CORE])
            result["affinity"] = {"engine": engine_proc.cpu_affinity(),
                                  "gateway": gateway.cpu_affinity(),
                                  "bench": sorted(os.sched_getaffinity(0))}
            targets = {"direct": (engine, {}), "charla": (gw, charla_headers),
                       "litellm": (ll, {"Authorization": f"Bearer {litellm_key}"})}
            for mode in ("stream", "whole"):
                rates, cut = asyncio.run(engines.interleaved(targets, (CHATS,), ROUNDS,
                                                             stream=mode == "stream"))
                result[f"throughput_{mode}"] = {name: per[CHATS] for name, per in rates.items()}
                result[f"cut_{mode}"] = {name: per[CHATS] for name, per in cut.items()}
    finally:
        os.sched_setaffinity(0, before)
    out["gateways_pinned"] = result


def _ratios(data: dict[str, Any], mode: str, name: str) -> list[float]:
    per = data[f"throughput_{mode}"]
    return [a / b for a, b in zip(per[name], per["direct"], strict=True)]


def report_lines(data: dict[str, Any]) -> list[str]:
    if "skipped" in data:
        return [f"Skipped: {data['skipped']}."]
    lines = [f"Throughput at {data['chats']} chats at once, 128 tokens a chat, with llama-server "
             f"on core {ENGINE_CORE} (one thread) and the gateways, their clients and the bench "
             f"on core {OTHERS_CORE}; {data['rounds']} interleaved rounds. Share of the engine "
             "reached directly in the same round: median (lowest to highest round).", "",
             "| answers | engine direct (median) | Charla | LiteLLM |", "|---|---|---|---|"]
    for mode in ("stream", "whole"):
        direct = engines.median(data[f"throughput_{mode}"]["direct"])
        cells = []
        for name in ("charla", "litellm"):
            ratios = _ratios(data, mode, name)
            cells.append(f"{engines.median(ratios):.3f} ({min(ratios):.3f} to "
                         f"{max(ratios):.3f})")
        lines.append(f"| {'streamed' if mode == 'stream' else 'whole'} | {direct:.1f} tok/s | "
                     f"{cells[0]} | {cells[1]} |")
    cut = {name: data["cut_stream"][name] + data["cut_whole"][name]
           for name in data["cut_stream"]}
    lines += ["", f"Chats cut off: {', '.join(f'{k} {v}' for k, v in cut.items())}."]
    return lines
