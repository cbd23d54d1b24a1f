"""The bots end to end: a signed Slack event → the reply seen by Slack's API (a local fake).

The whole path runs as deployed locally: the functions app and the worker as processes, the
gateway with llama-server and the bundled model, embedded Postgres. Slack's Web API is the
test suite's fake (tests/fakes/slack_api.py), served in this process, which notes when each
call arrives. For each question: when the first words went out (a post, or the start of a
native stream: the answer starts to show) and when the last edit, or the stream's stop, made it
whole. :func:`run` is the ``bots`` part: ten questions one at a time, then three rounds of 8
at once; :func:`alternating` serves the parts that compare settings side by side.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench import procs
from tests.fakes.slack_api import FakeSlack

EVENT = Path(__file__).resolve().parents[1] / "tests" / "events" / "slack" / \
    "app_mention_channel.json"
QUESTION = "What is the capital of France? Answer in one short sentence."


class FakeSlackServer:
    """The fake Slack Web API on a loopback port, in a thread of this process."""

    def __init__(self, port: int) -> None:
        self.fake = FakeSlack()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.fake.app, host="127.0.0.1", port=port,
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Timing:
    first_ms: float  # event sent → the first post or stream start seen by Slack
    whole_ms: float  # event sent → the last edit or the stream's stop (the whole answer shown)
    chars: int
    calls: int = 0  # Slack Web API calls the answer took (each counts against a rate limit)


def signed(secret: str, channel: str,
           question: str = QUESTION) -> tuple[bytes, dict[str, str]]:
    body: dict[str, Any] = json.loads(EVENT.read_text())
    ts = f"{time.time():.6f}"
    body["event_id"] = f"Ev{uuid.uuid4().hex[:16].upper()}"
    body["event"].update(channel=channel, ts=ts, event_ts=ts,
                         text=f"<@U07CHARLA> {question}")
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                 "X-Slack-Signature": f"v0={sig}"}


async def ask(http: httpx.AsyncClient, api: str, secret: str, slack: FakeSlack,
              timeout_s: float = 120, question: str = QUESTION,
              channel: str | None = None) -> Timing:
    """Ask in ``channel`` (a new one by default) and wait until the answer is whole."""
    channel = channel or f"C{uuid.uuid4().hex[:9].upper()}"
    raw, headers = signed(secret, channel, question)
    started = time.monotonic()
    response = await http.post(api + "/slack/events", content=raw, headers=headers)
    response.raise_for_status()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        # Whole: a streamed message stopped, or a posted one no longer marked as growing.
        shown = [m for (c, _), m in slack.messages.items() if c == channel]
        if shown and not shown[0].get("streaming") and not shown[0]["text"].endswith(" …"):
            calls = [c for c in slack.calls if c.json.get("channel") == channel]
            first = next(c for c in calls
                         if c.method in ("chat.postMessage", "chat.startStream"))
            return Timing((first.at - started) * 1000, (calls[-1].at - started) * 1000,
                          len(shown[0]["text"]), len(calls))
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no whole answer in {channel} within {timeout_s} s")


def answer_in(slack: FakeSlack, channel: str) -> str:
    """The text of the first message in ``channel``: the bot's answer."""
    return str(next(m for (c, _), m in sorted(slack.messages.items()) if c == channel)["text"])


async def measure(api: str, secret: str, slack: FakeSlack, *, alone: int,
                  together: int, rounds: int, question: str = QUESTION
                  ) -> dict[str, list[Timing]]:
    async with httpx.AsyncClient(timeout=30) as http:
        await ask(http, api, secret, slack, question=question)  # warm
        single = [await ask(http, api, secret, slack, question=question)
                  for _ in range(alone)]
        many: list[Timing] = []
        for _ in range(rounds):
            many += await asyncio.gather(*(ask(http, api, secret, slack, question=question)
                                           for _ in range(together)))
    return {"1": single, str(together): many}


def summary(timings: list[Timing]) -> dict[str, float]:
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    first = [t.first_ms for t in timings]
    whole = [t.whole_ms for t in timings]
    return {"n": len(timings), "first_p50": statistics.median(first),
            "first_p95": pct(first, 0.95), "whole_p50": statistics.median(whole),
            "whole_p95": pct(whole, 0.95),
            "chars_p50": statistics.median(t.chars for t in timings),
            "calls_p50": statistics.median(t.calls for t in timings)}


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["bots"]``: a signed Slack event to the reply Slack sees, alone and 8
    conversations at once."""
    print("== bots end to end: Slack event → reply (fake Slack API)", flush=True)
    secret = "bench-signing-" + secrets.token_hex(12)
    pg, url = procs.database(logdir, "pg-bots")
    slack = FakeSlackServer(procs.free_port())
    env = {"SLACK_SIGNING_SECRET": secret, "SLACK_BOT_TOKEN": slack.fake.token,
           "SLACK_API_URL": slack.url}
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(procs.gateway(keys, logdir))
            api = stack.enter_context(procs.functions_app(
                keys, gw, url, secrets.token_urlsafe(48), logdir, **env))
            stack.enter_context(procs.worker(keys, gw, url, logdir, **env))
            timings = asyncio.run(measure(api, secret, slack.fake, alone=10, together=8,
                                          rounds=3))
        out["bots"] = {n: summary(t) for n, t in timings.items()}
    finally:
        slack.stop()
        pg.stop()


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = ["Slack event → reply seen by Slack (fake API), bundled model:", "",
             "| conversations at once | n | first words p50 | p95 | whole answer p50 | p95 |"
             " answer length (chars, p50) |", "|---|---|---|---|---|---|---|"]
    for n, b in data.items():
        lines.append(f"| {n} | {b['n']} | {b['first_p50']:.0f} ms | {b['first_p95']:.0f} ms"
                     f" | {b['whole_p50']:.0f} ms | {b['whole_p95']:.0f} ms |"
                     f" {b['chars_p50']:.0f} |")
    return lines


def alternating(logdir: Path, keys: procs.Keys,
                database: Callable[[Path, str], tuple[Any, str]],
                variants: dict[str, dict[str, str]], *, rounds: int, per_round: int,
                question: str = QUESTION, gateway_env: dict[str, str] | None = None
                ) -> tuple[dict[str, list[Timing]], dict[str, FakeSlack]]:
    """One stack per variant (its settings in ``variants``: its own Postgres, fake Slack,
    functions app and worker) sharing one gateway (with ``gateway_env``) and engine;
    ``rounds`` rounds of ``per_round`` questions, one at a time, alternating between the
    stacks, so drift in the machine hits each alike. Returns each variant's timings and its
    fake Slack."""
    secret = "bench-signing-" + secrets.token_hex(12)
    cleanup: list[Callable[[], None]] = []
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(procs.gateway(keys, logdir, **(gateway_env or {})))
            stacks: dict[str, tuple[str, FakeSlackServer]] = {}
            for name, extra in variants.items():
                home = logdir / f"bots-{name}"
                home.mkdir(parents=True, exist_ok=True)
                pg, url = database(logdir, f"pg-bots-{name}")
                cleanup.append(pg.stop)
                slack = FakeSlackServer(procs.free_port())
                cleanup.append(slack.stop)
                env = {"SLACK_SIGNING_SECRET": secret, "SLACK_BOT_TOKEN": slack.fake.token,
                       "SLACK_API_URL": slack.url, **extra}
                api = stack.enter_context(procs.functions_app(
                    keys, gw, url, secrets.token_urlsafe(48), home, **env))
                stack.enter_context(procs.worker(keys, gw, url, home, **env))
                stacks[name] = (api, slack)
            timings: dict[str, list[Timing]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, (api, slack) in stacks.items():
                    measured = asyncio.run(measure(api, secret, slack.fake, alone=per_round,
                                                   together=0, rounds=0, question=question))
                    timings[name] += measured["1"]
        return timings, {name: slack.fake for name, (_, slack) in stacks.items()}
    finally:
        for stop in reversed(cleanup):
            stop()
