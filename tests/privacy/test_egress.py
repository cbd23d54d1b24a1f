"""No byte leaves but the reply: every connection the stack opens goes to loopback.

``charla up`` runs as a user starts it, with Slack, Telegram and Discord switched on (their APIs
played by local fakes on loopback, which is then where "the configured platform API" is) and
an API client. The whole process tree runs under ``strace -f``, which records every
``connect``/``sendto``/``sendmsg`` system call with its destination, whatever makes it: a Python
audit hook on ``socket.connect`` would miss most of them, since libpq (psycopg), uvloop and
llama-server connect from C. A Slack round trip, a Telegram one, a Discord one and an API chat
are driven through the stack; every destination recorded must then be loopback or a Unix
socket.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions.slack.verify import SignatureVerifier
from tests.charla.test_up import EVENTS, Running, descendants, start
from tests.conftest import ServerThread
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import BOT_TOKEN as SLACK_TOKEN
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.functions.bots import (
    DISCORD_APP,
    DISCORD_TOKEN,
    SLACK_SECRET,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
)
from tests.functions.discord.signing import ApplicationKeys
from tests.functions.test_bots_discord import interaction
from tests.functions.test_bots_telegram import update


def _strace_works() -> str | None:
    """Why strace cannot trace here (None: it can): missing, or ptrace not allowed."""
    if shutil.which("strace") is None:
        return "needs strace (make test installs it as root)"
    probe = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"strace cannot trace on this machine: {probe.stderr.strip()[:200]}"
    return None


_WHY_NOT = _strace_works()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_WHY_NOT is not None,
                                                   reason=_WHY_NOT or "")]

# Distinctive message texts, one per way in.
SAID = ("quetzal-5501 slack", "quetzal-5502 telegram", "quetzal-5503 discord",
        "quetzal-5504 api")
STRACE = ("strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-e", "signal=none")
_INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6?, "([^"]+)"')
_FAMILY = re.compile(r"sa_family=(AF_\w+)")


def destinations(trace: str) -> list[tuple[str, str]]:
    """(family, address) of every destination in an strace log; AF_UNIX paths as they are."""
    found = []
    for line in trace.splitlines():
        family = _FAMILY.search(line)
        if family is None:
            continue  # a send on a connected socket: its destination was seen at connect
        if family.group(1) in ("AF_INET", "AF_INET6"):
            match = _INET.search(line)
            found.append((family.group(1), next(g for g in match.groups() if g)
                          if match else line))
        else:
            found.append((family.group(1), line))
    return found


def beyond_loopback(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    outside = []
    for family, address in found:
        if family in ("AF_UNIX", "AF_NETLINK"):
            continue  # on this machine by definition
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            outside.append((family, address))
            continue
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)
                or ip.is_unspecified):
            outside.append((family, address))
    return outside


class Fakes:
    def __init__(self) -> None:
        self.slack = FakeSlack()
        self.telegram = FakeTelegram(TELEGRAM_TOKEN)
        self.discord = FakeDiscord(DISCORD_APP, DISCORD_TOKEN)
        self.discord_keys = ApplicationKeys()
        self.servers = {name: ServerThread(fake.app).start() for name, fake in (
            ("slack", self.slack), ("telegram", self.telegram), ("discord", self.discord))}

    def env(self) -> dict[str, str]:
        return {
            "SLACK_SIGNING_SECRET": SLACK_SECRET, "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": self.servers["slack"].url,
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
            "TELEGRAM_API_URL": self.servers["telegram"].url,
            "DISCORD_PUBLIC_KEY": self.discord_keys.public_key_hex,
            "DISCORD_APPLICATION_ID": DISCORD_APP, "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
            "DISCORD_API_URL": self.servers["discord"].url,
            "CHARLA_BOT_MAX_TOKENS": "24",
            "CHARLA_LOG_LEVEL": "DEBUG",  # the logs below must stay clean even at DEBUG
        }

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture
def traced(tmp_path: Path, llama_server_bin: Path) -> Iterator[tuple[Running, Fakes, Path]]:
    trace = tmp_path / "connect.trace"
    fakes = Fakes()
    running = start(tmp_path / "home", llama_server_bin,
                    prefix=(*STRACE, "-o", str(trace)), **fakes.env())
    try:
        yield running, fakes, trace
    finally:
        running.close()
        fakes.stop()


def _until(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)
    return value


def test_a_round_trip_on_every_platform_and_the_api_opens_loopback_connections_only(
    traced: tuple[Running, Fakes, Path]
) -> None:
    stack, fakes, trace = traced
    stack.wait_for(r"Charla is up", timeout=180)
    token = stack.wait_for(r"^\s+(eyJ[\w-]+\.[\w-]+\.[\w-]+)\s*$", timeout=5).group(1)

    # Slack: an app mention, answered in its thread.
    event = json.loads((EVENTS / "app_mention_channel.json").read_text())
    event["event"]["ts"] = event["event"]["event_ts"] = f"{time.time():.6f}"
    event["event"]["text"] += f" {SAID[0]}"
    raw, stamp = json.dumps(event).encode(), str(int(time.time()))
    assert httpx.post(stack.api + "/slack/events", content=raw, headers={
        "X-Slack-Request-Timestamp": stamp, "Content-Type": "application/json",
        "X-Slack-Signature": SignatureVerifier(SLACK_SECRET).sign(raw, stamp)}
    ).status_code == 200
    # Telegram: a private message.
    upd = update(text=f"Hola, {SAID[1]}")
    assert httpx.post(stack.api + "/telegram/webhook", json=upd, headers={
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}).status_code == 200
    # Discord: /ask, deferred then edited.
    body = interaction(question=f"Hello? {SAID[2]}")
    fakes.discord.open_interaction(body["token"])
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    assert httpx.post(stack.api + "/discord/interactions", content=raw, headers={
        "Content-Type": "application/json", **fakes.discord_keys.headers(stamp, raw)}
    ).json() == {"type": 5}
    # The API.
    chat = httpx.post(stack.api + "/v1/chat/completions", timeout=90,
                      headers={"Authorization": f"Bearer {token}"},
                      json={"messages": [{"role": "user", "content": SAID[3]}],
                            "max_tokens": 5})
    assert chat.status_code == 200, chat.text

    _until(lambda: fakes.slack.messages, "Slack reply")  # posted, or streamed
    _until(lambda: fakes.telegram.messages, "Telegram reply")
    _until(lambda: fakes.discord.original(body["token"]), "Discord reply")

    processes = [" ".join(p.cmdline()) for p in descendants(stack.proc.pid)]
    os.killpg(stack.proc.pid, signal.SIGTERM)
    stack.proc.wait(timeout=60)

    found = destinations(trace.read_text())
    assert not beyond_loopback(found), "\n".join(map(str, beyond_loopback(found)))
    # It saw the real traffic (TCP to the model server, llama-server, the fakes, Redis) from a
    # tree that held the functions app, the worker, the model server and llama-server.
    assert sum(f == "AF_INET" for f, _ in found) >= 10, found
    for part in ("functions", "functions.worker", "model_server", "llama-server"):
        assert any(part in p for p in processes), (part, processes)

    # And the logs of the whole run, at DEBUG: no configured secret, no message text.
    logs = "".join(stack.output)
    assert "Charla is up" in logs and "DEBUG" in logs
    for name, value in fakes.env().items():
        if name.endswith(("_TOKEN", "_SECRET", "SIGNING_SECRET")):
            assert value not in logs, f"{name} appears in the logs"
    for text in SAID:
        assert text not in logs, f"a message text appears in the logs: {text}"


def test_the_trace_shows_an_attempt_beyond_loopback(tmp_path: Path) -> None:
    """The check above can fail: a process that tries to reach a public address (TEST-NET-1,
    never routed), even from C and failing at once, leaves a destination that is not loopback."""
    trace = tmp_path / "t.trace"
    code = ("import socket\n"
            "s = socket.socket(); s.settimeout(0.2)\n"
            "try:\n    s.connect(('192.0.2.1', 443))\nexcept OSError:\n    pass\n")
    subprocess.run([*STRACE, "-o", str(trace), sys.executable, "-c", code], check=True,
                   timeout=30)
    found = destinations(trace.read_text())
    assert ("AF_INET", "192.0.2.1") in found
    assert beyond_loopback(found) == [("AF_INET", "192.0.2.1")]
    assert beyond_loopback([("AF_INET6", "::1"), ("AF_INET", "127.0.0.1"),
                            ("AF_UNIX", "/tmp/.s.PGSQL.5432")]) == []
