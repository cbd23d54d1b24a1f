"""The bots end to end with the privacy controls off and on, side by side (issue 8's goal:
at most 5% slower with all of it on).

Two stacks share one gateway and engine, each with its own Postgres and fake Slack: "off" has
moderation off and sends the model what the user wrote; "on" has the bundled moderation policy
on input and output (streamed answers checked as they grow) and redacts what goes to the model.
Both seal message bodies (encryption at rest cannot be switched off) and redact every log
line; their cost is measured apart in the encryption and redaction parts. Rounds alternate
between the two stacks, so drift in the machine hits both alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bots, procs

ROUNDS = 6
PER_ROUND = 5
VARIANTS = {
    "off": {"CHARLA_MODERATION_POLICY": "off", "CHARLA_REDACT_MODEL_INPUT": "off"},
    "on": {"CHARLA_REDACT_MODEL_INPUT": "on"},
}


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys,
        database: Callable[[Path, str], tuple[Any, str]]) -> None:
    print("== bots end to end, privacy controls off and on (Slack, one at a time)", flush=True)
    # Greedy sampling (the bots send no temperature): both stacks get the same answer, so
    # the times compare the controls, not answers of different lengths.
    timings, _ = bots.alternating(logdir, keys, database, VARIANTS, rounds=ROUNDS,
                                  per_round=PER_ROUND,
                                  gateway_env={"CHARLA_ENGINE_ARGS": "--temp 0"})
    out["privacy"] = {name: bots.summary(t) for name, t in timings.items()}
    out["privacy"]["ratio_whole_p50"] = (
        statistics.median(t.whole_ms for t in timings["on"])
        / statistics.median(t.whole_ms for t in timings["off"]))


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = ["Slack event → reply seen by Slack, one conversation at a time, privacy controls off"
             " and on (alternating rounds):", "",
             "| controls | n | first words p50 | whole answer p50 | whole p95 | length p50 |",
             "|---|---|---|---|---|---|"]
    for name in VARIANTS:
        d = data[name]
        lines.append(f"| {name} | {d['n']} | {d['first_p50']:.0f} ms | {d['whole_p50']:.0f} ms"
                     f" | {d['whole_p95']:.0f} ms | {d.get('chars_p50', 0):.0f} chars |")
    return [*lines, "", f"Whole answer p50, on / off: {data['ratio_whole_p50']:.3f}."]
