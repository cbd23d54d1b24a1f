"""One chat at a time, through the gateway and to its engine direct, and the gateway's CPU.

More rounds than :mod:`bench.throughput` (the 1-chat throughput ratio is the noisiest), and the
gateway process's CPU per token, whole and streamed (psutil: user + system time, counted in
10 ms ticks, so totalled over all rounds).
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import engines, procs
from bench.throughput import MODES

if TYPE_CHECKING:
    import psutil

ROUNDS = 8


async def _measure(gw: str, direct: str, headers: dict[str, str], proc: psutil.Process
                   ) -> dict[str, Any]:
    """Per mode and target: the median tok/s, every round's, and the gateway's CPU per token
    while that target answered."""
    result: dict[str, Any] = {}
    clients = {"direct": engines.session(), "gateway": engines.session()}
    try:
        for mode in MODES:
            rates: dict[str, list[float]] = {"direct": [], "gateway": []}
            cpu = {"direct": 0.0, "gateway": 0.0}
            tokens = {"direct": 0, "gateway": 0}
            for _ in range(ROUNDS):
                for name, url, h in (("direct", direct, {}), ("gateway", gw, headers)):
                    before = sum(proc.cpu_times()[:2])
                    r = await engines.throughput(clients[name], url, h, 1,
                                                 stream=mode == "stream")
                    rates[name].append(r.tok_s)
                    cpu[name] += sum(proc.cpu_times()[:2]) - before
                    tokens[name] += r.tokens
            result[mode] = {name: {"tok_s": statistics.median(rates[name]),
                                   "rounds": rates[name],
                                   "gateway_cpu_us_per_token":
                                       cpu[name] / tokens[name] * 1e6}
                            for name in rates}
    finally:
        for client in clients.values():
            await client.close()
    return result


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["one_chat"]``."""
    print("== one chat: gateway against its engine direct, and the gateway's CPU", flush=True)
    headers = {"Authorization": f"Bearer {keys.service_token()}"}
    with procs.gateway(keys, logdir) as (gw, direct):
        gateway_proc = procs.process_serving(gw)
        out["one_chat"] = asyncio.run(_measure(gw, direct, headers, gateway_proc))


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"One chat, {ROUNDS} interleaved rounds (tokens/s, median) and the "
             "gateway process's CPU per token (over all rounds):", "",
             "| answers | direct | gateway | gateway / direct | gateway CPU per token "
             "(while direct / through it) |", "|---|---|---|---|---|"]
    for mode, per in data.items():
        d, g = per["direct"], per["gateway"]
        lines.append(f"| {mode} | {d['tok_s']:.0f} | {g['tok_s']:.0f} | "
                     f"{g['tok_s'] / d['tok_s']:.3f} | "
                     f"{d['gateway_cpu_us_per_token']:.0f} µs / "
                     f"{g['gateway_cpu_us_per_token']:.0f} µs |")
    return lines
