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

import asyncio
import secrets
import statistics
from collections.abc import Callable
from contextlib import ExitStack
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
    secret = "bench-signing-" + secrets.token_hex(12)
    cleanup: list[Callable[[], None]] = []
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(procs.gateway(keys, logdir))
            stacks: dict[str, tuple[str, bots.FakeSlackServer]] = {}
            for name, extra in VARIANTS.items():
                home = logdir / f"privacy-{name}"
                home.mkdir(parents=True, exist_ok=True)
                pg, url = database(logdir, f"pg-privacy-{name}")
                cleanup.append(pg.stop)
                slack = bots.FakeSlackServer(procs.free_port())
                cleanup.append(slack.stop)
                env = {"SLACK_SIGNING_SECRET": secret, "SLACK_BOT_TOKEN": slack.fake.token,
                       "SLACK_API_URL": slack.url, **extra}
                api = stack.enter_context(procs.functions_app(
                    keys, gw, url, secrets.token_urlsafe(48), home, **env))
                stack.enter_context(procs.worker(keys, gw, url, home, **env))
                stacks[name] = (api, slack)
            timings: dict[str, list[bots.Timing]] = {name: [] for name in VARIANTS}
            for _ in range(ROUNDS):
                for name, (api, slack) in stacks.items():
                    measured = asyncio.run(bots.measure(api, secret, slack.fake,
                                                        alone=PER_ROUND, together=0, rounds=0))
                    timings[name] += measured["1"]
        out["privacy"] = {name: bots.summary(t) for name, t in timings.items()}
        out["privacy"]["ratio_whole_p50"] = (
            statistics.median(t.whole_ms for t in timings["on"])
            / statistics.median(t.whole_ms for t in timings["off"]))
    finally:
        for stop in reversed(cleanup):
            stop()


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = ["Slack event → reply seen by Slack, one conversation at a time, privacy controls off"
             " and on (alternating rounds):", "",
             "| controls | n | first words p50 | whole answer p50 | whole p95 |",
             "|---|---|---|---|---|"]
    for name in VARIANTS:
        d = data[name]
        lines.append(f"| {name} | {d['n']} | {d['first_p50']:.0f} ms | {d['whole_p50']:.0f} ms"
                     f" | {d['whole_p95']:.0f} ms |")
    return [*lines, "", f"Whole answer p50, on / off: {data['ratio_whole_p50']:.3f}."]
