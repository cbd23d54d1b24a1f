"""Chat throughput at 1, 4 and 8 chats at once, and the latency the gateway adds.

llama-cpp-python's server alone first (while resident it slows other engines on 2 cores), then
the gateway and its own engine in interleaved rounds, so that drift on a shared machine hits
both alike. Whole answers and streamed ones; medians are reported. Then 1,000 one-token
requests in interleaved pairs, direct and through the gateway: the gateway's added latency.

The part writes three keys of the results: ``throughput``, ``cut_streams`` (the chats whose
stream ended early) and ``latency_ms``; :func:`report_lines` reads all three.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from bench import engines, procs

CHATS = (1, 4, 8)
ROUNDS = 4
MODES = ("whole", "stream")

Rates = dict[str, dict[int, list[float]]]  # target -> chats at once -> tok/s per round


def _rounds(targets: dict[str, tuple[str, dict[str, str]]], stream: bool
            ) -> tuple[Rates, dict[str, dict[int, int]]]:
    """Interleaved rounds per target; also counts the chats whose stream was cut off."""
    return asyncio.run(engines.interleaved(targets, CHATS, ROUNDS, stream=stream))


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["throughput"]``, ``out["cut_streams"]`` and ``out["latency_ms"]``.

    llama-cpp-python runs as a user would start it (its defaults: one thread here, and
    ``interrupt_requests`` on, which ends a stream when another request waits) and, streamed,
    once more with ``--interrupt_requests False`` so that every chat gets its whole answer."""
    rates: dict[str, Rates] = {mode: {} for mode in MODES}
    cut: dict[str, dict[str, dict[int, int]]] = {mode: {} for mode in MODES}
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("   llama-cpp-python not installed: make bench installs it", flush=True)
    else:
        for name, extra, modes in (
            ("llama_cpp_python", (), MODES),
            ("llama_cpp_python_no_interrupt", ("--interrupt_requests", "False"), ("stream",)),
        ):
            print(f"== throughput: {name}", flush=True)
            with procs.llama_cpp_python_server(logdir, *extra) as url:
                for mode in modes:
                    r, c = _rounds({name: (url, {})}, stream=mode == "stream")
                    rates[mode] |= r
                    cut[mode] |= c
    print("== throughput and overhead: gateway and its engine direct", flush=True)
    headers = {"Authorization": f"Bearer {keys.service_token()}"}
    with procs.gateway(keys, logdir) as (gw, direct):
        for mode in MODES:
            r, c = _rounds({"direct": (direct, {}), "gateway": (gw, headers)},
                           stream=mode == "stream")
            rates[mode] |= r
            cut[mode] |= c
        lat = asyncio.run(engines.tiny_latencies(
            {"direct": (direct, {}), "gateway": (gw, headers)}, n=1000))
    out["throughput"] = rates
    out["cut_streams"] = cut
    diffs = [g - d for g, d in zip(lat["gateway"], lat["direct"], strict=True)]
    out["latency_ms"] = {name: {"p50": engines.median(v), "p90": engines.percentile(v, 0.9)}
                         for name, v in lat.items()}
    out["latency_ms"]["added_p50"] = engines.median(diffs)


def _table(mode: str, rates: Rates, cut: dict[str, dict[int, int]]) -> list[str]:
    med = {name: {int(n): statistics.median(v) for n, v in per.items()}
           for name, per in rates.items()}
    names = [n for n in ("llama_cpp_python", "llama_cpp_python_no_interrupt", "direct",
                         "gateway") if n in med]
    title = "whole answers" if mode == "whole" else "streamed answers"
    lines = [f"Aggregate tokens/s, {title}, median of {ROUNDS} rounds (128 tokens a chat); "
             "(cut: chats whose stream ended early, over all rounds):", "",
             "| chats at once | " + " | ".join(names) + " | gateway / " +
             " | gateway / ".join(n for n in names if n != "gateway") + " |",
             "|---" * (1 + 2 * len(names) - 1) + "|"]
    for n in CHATS:
        g = med["gateway"][n]
        cells = [f"{med[name][n]:.0f}" + (f" (cut {cut[name][n]})" if cut[name][n] else "")
                 for name in names]
        ratios = [f"{g / med[name][n]:.2f}x" for name in names if name != "gateway"]
        lines.append(f"| {n} | " + " | ".join(cells + ratios) + " |")
    return [*lines, ""]


def report_lines(out: dict[str, Any]) -> list[str]:
    """The tables of a run's results (``out`` whole: the part wrote three keys of it)."""
    lines: list[str] = []
    for mode in MODES:
        lines += _table(mode, out["throughput"][mode], out["cut_streams"][mode])
    lat = out["latency_ms"]
    return [*lines, "", "| one-token request, 1,000 interleaved pairs | p50 | p90 |",
            "|---|---|---|",
            f"| llama-server direct | {lat['direct']['p50']:.2f} ms | "
            f"{lat['direct']['p90']:.2f} ms |",
            f"| through the gateway (JWT + limits + proxy) | "
            f"{lat['gateway']['p50']:.2f} ms | {lat['gateway']['p90']:.2f} ms |",
            "", f"Added by the gateway, median of the pairwise differences: "
            f"{lat['added_p50']:.2f} ms."]
