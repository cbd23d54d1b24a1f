"""Slack answers streamed natively against posted and edited, side by side.

Two stacks share one gateway and engine, each with its own Postgres and fake Slack: "streamed"
runs with the default (``CHARLA_SLACK_STREAMING=on``: a growing answer is a
``chat.startStream``, appended at most once a second, stopped with its last words), "posted"
with ``off`` (posted, then edited at most once a second). The question asks for an answer long
enough to be shown while it grows, and the engine samples greedily, so every answer is the
same. Rounds alternate between the stacks, so drift in the machine
hits both alike. Besides the times, the Web API calls each answer took: each counts against
one of Slack's per-method rate limits.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bots, procs

ROUNDS = 5
PER_ROUND = 4
QUESTION = "Write a short poem about the sea, in four stanzas."
VARIANTS = {"streamed": {"CHARLA_SLACK_STREAMING": "on"},
            "posted": {"CHARLA_SLACK_STREAMING": "off"}}


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys,
        database: Callable[[Path, str], tuple[Any, str]]) -> None:
    print("== Slack answers: streamed natively against posted and edited", flush=True)
    # Greedy sampling (the bots send no temperature): both stacks get the same answer, so
    # the times compare showing it, not answers of different lengths.
    timings, fakes = bots.alternating(logdir, keys, database, VARIANTS, rounds=ROUNDS,
                                      per_round=PER_ROUND, question=QUESTION,
                                      gateway_env={"CHARLA_ENGINE_ARGS": "--temp 0"})
    out["slack_stream"] = {name: bots.summary(t) for name, t in timings.items()}
    for name, fake in fakes.items():
        out["slack_stream"][name]["methods"] = _methods(fake)
    out["slack_stream"]["ratio_whole_p50"] = (
        statistics.median(t.whole_ms for t in timings["streamed"])
        / statistics.median(t.whole_ms for t in timings["posted"]))


def _methods(fake: Any) -> dict[str, int]:
    """Calls per Web API method, over every answer of the run (the warm-up ones included)."""
    counts: dict[str, int] = {}
    for call in fake.calls:
        counts[call.method] = counts.get(call.method, 0) + 1
    return dict(sorted(counts.items()))


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"Slack answers to \"{QUESTION}\", one conversation at a time, streamed natively"
             " and posted-then-edited (alternating rounds):", "",
             "| answers | n | first words p50 | whole answer p50 | whole p95 | length p50 |"
             " Web API calls per answer p50 | calls by method (whole run) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in VARIANTS:
        d = data[name]
        methods = ", ".join(f"{m} {n}" for m, n in d["methods"].items())
        lines.append(f"| {name} | {d['n']} | {d['first_p50']:.0f} ms | {d['whole_p50']:.0f} ms"
                     f" | {d['whole_p95']:.0f} ms | {d['chars_p50']:.0f} chars |"
                     f" {d['calls_p50']:.0f} | {methods} |")
    return [*lines, "", f"Whole answer p50, streamed / posted: {data['ratio_whole_p50']:.3f}."]
