"""``make bench``: every figure in docs/benchmarks.md, side by side in one run.

``python -m bench.run`` runs every part; ``python -m bench.run ingress bots`` only those named.
Each part is a module of bench/ with ``run`` (which fills its key of the results) and
``report_lines``; this module only picks the parts, runs them in order, and prints a Markdown
report that it writes, with the raw numbers, under bench/results/.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    amx,
    answers,
    api_cpu,
    attention,
    bots,
    coldstart,
    embeddings,
    encryption,
    engine_alone,
    engine_threads,
    gateway_cpu,
    gateways,
    ingestion,
    ingress,
    long_history,
    one_chat,
    privacy_e2e,
    procs,
    prompt_layout,
    quant,
    redaction,
    retrieval,
    second_turn,
    slack_stream,
    throughput,
)

Part = Callable[[dict[str, Any], Path, procs.Keys], None]

# In the order a full run takes them (embeddings last: it needs no server).
PARTS: dict[str, Part] = {
    "throughput": throughput.run, "one_chat": one_chat.run,
    "gateway_cpu": gateway_cpu.run, "gateways": gateways.run,
    "gateways_pinned": engine_alone.run,
    "api_cpu": lambda out, logdir, keys: api_cpu.run(out, logdir, keys, procs.database),
    "long_history": lambda out, logdir, keys: long_history.run(out, logdir, keys,
                                                               procs.database),
    "answers": lambda out, logdir, keys: answers.run(out, logdir, keys, procs.database),
    "prompt_layout": lambda out, logdir, keys: prompt_layout.run(out, logdir, keys,
                                                                 procs.database),
    "engine_threads": lambda out, logdir, keys: engine_threads.run(out, logdir),
    "quant": quant.run, "amx": amx.run,
    "attention": attention.run,
    "second_turn": second_turn.run, "ingress": ingress.run,
    "bots": bots.run, "ingestion": ingestion.run,
    "retrieval": lambda out, logdir, keys: retrieval.run(out, logdir),
    "redaction": lambda out, logdir, keys: redaction.run(out),
    "coldstart": lambda out, logdir, keys: coldstart.run(out, logdir),
    "encryption": lambda out, logdir, keys: encryption.run(out, logdir),
    "privacy": lambda out, logdir, keys: privacy_e2e.run(out, logdir, keys, procs.database),
    "slack_stream": lambda out, logdir, keys: slack_stream.run(out, logdir, keys,
                                                               procs.database),
    "embeddings": lambda out, logdir, keys: embeddings.run(out),
}

# The report's sections, in the report's order: the key a part fills, and its lines.
SECTIONS: list[tuple[str, Callable[[Any], list[str]]]] = [
    ("one_chat", one_chat.report_lines), ("quant", quant.report_lines),
    ("amx", amx.report_lines), ("attention", attention.report_lines),
    ("gateway_cpu", gateway_cpu.report_lines), ("gateways", gateways.report_lines),
    ("gateways_pinned", engine_alone.report_lines),
    ("api_cpu", api_cpu.report_lines),
    ("long_history", long_history.report_lines), ("answers", answers.report_lines),
    ("prompt_layout", prompt_layout.report_lines),
    ("engine_threads", engine_threads.report_lines),
    ("second_turn", second_turn.report_lines), ("ingress", ingress.report_lines),
    ("bots", bots.report_lines), ("privacy", privacy_e2e.report_lines),
    ("slack_stream", slack_stream.report_lines), ("retrieval", retrieval.report_lines),
    ("coldstart", coldstart.report_lines), ("redaction", redaction.report_lines),
    ("encryption", encryption.report_lines), ("ingestion", ingestion.report_lines),
    ("embeddings", embeddings.report_lines),
]


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


def report(out: dict[str, Any]) -> str:
    """The Markdown report of the parts that ran, each after a blank line."""
    lines = [f"Machine: {out['machine']}", f"Date: {out['date']}",
             f"Parts: {', '.join(out['parts'])}", ""]
    if "throughput" in out:
        # Throughput's tables read three keys of the results, and follow the header directly.
        lines += throughput.report_lines(out)
    for key, section in SECTIONS:
        if key in out:
            lines += ["", *section(out[key])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Every part, or only those named (``python -m bench.run ingress bots``)."""
    names = (argv if argv is not None else sys.argv[1:]) or [*PARTS]
    unknown = set(names) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(PARTS)}")
    out: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                           "command": "make bench", "parts": names}
    logdir = procs.scratch()
    keys = procs.Keys()
    for name in names:
        PARTS[name](out, logdir, keys)
    text = report(out)
    print("\n" + text)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    # A full run is "latest"; a run of some parts does not overwrite it.
    stem = "latest" if set(names) == set(PARTS) else "latest-" + "-".join(names)
    (results / f"{stem}.json").write_text(json.dumps(out, indent=2))
    (results / f"{stem}.md").write_text(text)


if __name__ == "__main__":
    main()
