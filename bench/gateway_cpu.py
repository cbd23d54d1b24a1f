"""The gateway's own CPU per token, against a stand-in engine that computes nothing.

With the real engine on the same 2 cores, the gateway's CPU shows up only as a small loss of
the engine's throughput, inside the noise of a single run. Against the stand-in
(bench/standin_engine.py: llama-server's answers at a fixed pace) the gateway process's CPU
time (all its threads, from /proc/PID/task/*/schedstat) is the whole story: microseconds per
token relayed, streamed and whole, for one chat and for eight at once. Side by side in the
same run: a bare relay (bench/bare_relay.py: asyncio and httptools, no framework, no checks)
on the same stand-in, the floor for any Python hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

from bench import engines, procs

ROUNDS = 10
TOKENS = 128
INTERVAL_MS = 6.5


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in nanoseconds' precision (the scheduler's
    own count; psutil's user + system time moves in 10 ms ticks, too coarse here)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def standin_binary(logdir: Path) -> Path:
    """A wrapper script the gateway can start as its ``llama-server``."""
    path = logdir / "standin-llama-server"
    root = Path(__file__).resolve().parent.parent
    path.write_text(f"#!/bin/sh\ncd {shlex.quote(str(root))}\n"
                    f"exec {shlex.quote(sys.executable)} -m bench.standin_engine "
                    f"--interval-ms {INTERVAL_MS} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


Target = tuple[str, dict[str, str], dict[str, Any]]  # URL, headers, {column: process}


async def measure(targets: dict[str, Target]) -> dict[str, Any]:
    """Interleaved rounds per target; for each process a target counts, its CPU µs per token
    of that target's answers."""
    result: dict[str, Any] = {}
    clients = {name: engines.session() for name in targets}
    try:
        for chats in (1, 8):
            for mode in ("stream", "whole"):
                cpu: dict[str, float] = {}
                tokens = dict.fromkeys(targets, 0)
                for _ in range(ROUNDS):
                    for name, (url, headers, counted) in targets.items():
                        before = {column: cpu_seconds(p.pid) for column, p in counted.items()}
                        r = await engines.throughput(clients[name], url, headers, chats,
                                                     max_tokens=TOKENS, stream=mode == "stream")
                        for column, p in counted.items():
                            cpu[column] = (cpu.get(column, 0.0) + cpu_seconds(p.pid)
                                           - before[column])
                        tokens[name] += r.tokens
                result[f"{mode}_{chats}"] = {column: cpu[column] / tokens[name] * 1e6
                                             for name, (_, _, counted) in targets.items()
                                             for column in counted}
    finally:
        for client in clients.values():
            await client.close()
    return result


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    print("== the gateway's CPU per token, against a stand-in engine", flush=True)
    headers = {"Authorization": f"Bearer {keys.service_token()}"}
    with procs.gateway(keys, logdir, engine=standin_binary(logdir)) as (gw, engine):
        port = procs.free_port()
        cmd = [sys.executable, "-m", "bench.bare_relay", "--port", str(port),
               "--upstream", engine]
        with procs.running(cmd, f"http://127.0.0.1:{port}/health",
                           env={"PYTHONPATH": os.getcwd()}, log=logdir / "bare-relay.log"):
            relay = f"http://127.0.0.1:{port}"
            targets: dict[str, Target] = {
                "gateway": (gw, headers, {"gateway": procs.process_serving(gw)}),
                "bare relay": (relay, {}, {"bare relay": procs.process_serving(relay)}),
            }
            out["gateway_cpu"] = asyncio.run(measure(targets))


def report_lines(data: dict[str, Any]) -> list[str]:
    return cpu_table(f"Gateway CPU per token against a stand-in engine ({TOKENS} tokens per "
                     f"chat, one every {INTERVAL_MS} ms; process CPU time over {ROUNDS} "
                     "interleaved rounds):", data)


def cpu_table(title: str, data: dict[str, Any]) -> list[str]:
    """``title``, then CPU per token by answer kind and chats at once, one column per process."""
    names = list(next(iter(data.values())))
    lines = [title, "", "| answers | chats at once | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for key, per in data.items():
        mode, chats = key.split("_")
        lines.append(f"| {'streamed' if mode == 'stream' else 'whole'} | {chats} | "
                     + " | ".join(f"{per[n]:.0f} µs" for n in names) + " |")
    return lines
