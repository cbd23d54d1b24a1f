"""llama-server's threads on a machine it shares: idle, and with one CPU-bound process beside it.

llama.cpp's threads meet at a barrier after every step of the model. When another process
holds one of the cores, a thread that is not running keeps the others waiting for its next
time slice, at every step. This part starts llama-server as the gateway starts it (the bundled
model, 2 slots), with 1 thread and with as many as the machine has, and asks it for 96 tokens,
two requests at once, four rounds: first on an idle machine, then with ``python3 -c "while
True: pass"`` running beside it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import procs

ROUNDS = 4
TOKENS = 96
QUESTION = "Tell me a long story about a lighthouse keeper and a storm."


def _answer_s(url: str) -> float:
    started = time.perf_counter()
    response = httpx.post(url + "/v1/chat/completions", timeout=600, json={
        "messages": [{"role": "user", "content": QUESTION}], "max_tokens": TOKENS,
        "temperature": 0.7})
    response.raise_for_status()
    return time.perf_counter() - started


def _rounds(url: str) -> list[float]:
    times: list[float] = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(ROUNDS):
            times += pool.map(_answer_s, [url, url])
    return times


def run(out: dict[str, Any], logdir: Path) -> None:
    print("== llama-server's threads, idle and beside a busy process", flush=True)
    cores = os.cpu_count() or 1
    rows = []
    for busy in (False, True):
        burner = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
                  if busy else None)
        try:
            for threads in sorted({1, cores}):
                with procs.llama_server(logdir, f"threads-{threads}",
                                        "--threads", str(threads)) as url:
                    times = _rounds(url)
                rows.append({"busy": busy, "threads": threads,
                             "p50_s": statistics.median(times), "max_s": max(times)})
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    out["engine_threads"] = {"cores": cores, "rows": rows}


def report_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"llama-server beside a busy process ({result['cores']} cores; {TOKENS} tokens, "
             f"2 requests at once, {ROUNDS} rounds; the time of one answer):", "",
             "| machine | threads | p50 | slowest |", "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {'one busy process beside it' if r['busy'] else 'idle'} | "
                     f"{r['threads']} | {r['p50_s']:.1f} s | {r['max_s']:.1f} s |")
    return lines
