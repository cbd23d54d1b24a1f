"""``charla up`` as a user runs it: the whole stack starts, answers, and stops as one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from functions.slack.verify import SignatureVerifier
from tests.conftest import ENGINE_THREADS, ServerThread, free_port
from tests.fakes.slack_api import BOT_TOKEN as SLACK_TOKEN
from tests.fakes.slack_api import FakeSlack

EVENTS = Path(__file__).resolve().parents[1] / "events" / "slack"
SLACK_SECRET = "up-test-signing-secret-0123456789"

pytestmark = pytest.mark.slow


@dataclass
class Running:
    proc: subprocess.Popen[str]
    home: Path
    api: str
    model_server: str
    output: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    def close(self) -> None:
        """Stop the stack as Ctrl-C does, so that it stops its embedded Postgres (a daemon in
        a session of its own, which a signal to the group does not reach); killed if it will
        not, and then its Postgres too."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        pid_file = self.home / "pgdata" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        if self.pump is not None:
            self.pump.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in output:\n" + "".join(self.output))


def start(home: Path, llama_server_bin: Path, *, prefix: tuple[str, ...] = (),
          **extra: str) -> Running:
    """``charla up`` in its own process group; ``prefix`` runs it under another command."""
    port, model_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "MODEL_SERVER_URL", "CHARLA_API_JWT_SECRET")},
        "CHARLA_HOME": str(home),
        "PORT": str(port),
        "MODEL_SERVER_PORT": str(model_port),
        "CHARLA_LLAMA_SERVER_BIN": str(llama_server_bin),
        "CHARLA_ENGINE_PARALLEL": "2",
        "CHARLA_ENGINE_CTX_SIZE": "8192",
        "CHARLA_ENGINE_THREADS": ENGINE_THREADS,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-c", "from charla.cli import main; main()", "up"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    running = Running(proc, home, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{model_port}")

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.output.append(line)

    running.pump = threading.Thread(target=pump, daemon=True)
    running.pump.start()
    return running


def mention_slack(api: str) -> tuple[dict[str, Any], httpx.Response]:
    """A new app mention, signed as Slack signs it, posted to the stack at ``api``."""
    event = json.loads((EVENTS / "app_mention_channel.json").read_text())
    event["event"]["ts"] = event["event"]["event_ts"] = f"{time.time():.6f}"
    raw = json.dumps(event).encode()
    stamp = str(int(time.time()))
    acked = httpx.post(api + "/slack/events", content=raw, headers={
        "X-Slack-Request-Timestamp": stamp, "Content-Type": "application/json",
        "X-Slack-Signature": SignatureVerifier(SLACK_SECRET).sign(raw, stamp)})
    return event, acked


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def fake_slack() -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack()
    server = ServerThread(fake.app).start()
    yield fake, server.url
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, llama_server_bin: Path,
          fake_slack: tuple[FakeSlack, str]) -> Iterator[Running]:
    running = start(tmp_path / "charla-home", llama_server_bin,
                    SLACK_SIGNING_SECRET=SLACK_SECRET, SLACK_BOT_TOKEN=SLACK_TOKEN,
                    SLACK_API_URL=fake_slack[1])
    yield running
    running.close()


def test_up_serves_the_api_and_stops_cleanly_on_sigterm(
    stack: Running, llama_server_bin: Path, fake_slack: tuple[FakeSlack, str]
) -> None:
    stack.wait_for(r"Charla is up", timeout=180)
    token = stack.wait_for(r"^\s+(eyJ[\w-]+\.[\w-]+\.[\w-]+)\s*$", timeout=5).group(1)
    assert "embedded Postgres" in "".join(stack.output)

    headers = {"Authorization": f"Bearer {token}"}
    health = httpx.get(stack.api + "/healthz").json()
    assert health == {"status": "ok", "database": "ok", "model_server": "ok"}
    reply = httpx.post(stack.api + "/v1/chat/completions", headers=headers, timeout=60,
                       json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]

    # Keys were made for the stack, private ones readable by the owner only.
    for name in ("service_ed25519.pem", "api_jwt_secret"):
        assert oct((stack.home / name).stat().st_mode)[-3:] == "600"

    # The bots: Slack is configured (its API played by a fake), the others are off.
    banner = "".join(stack.output)
    assert re.search(r"Slack\s+on\s+POST .*/slack/events", banner)
    assert re.search(r"Telegram\s+off\s+\(set TELEGRAM_BOT_TOKEN", banner)
    assert httpx.post(stack.api + "/telegram/webhook", json={}).status_code == 404
    event, acked = mention_slack(stack.api)
    assert acked.status_code == 200
    fake = fake_slack[0]
    deadline = time.monotonic() + 60
    while not fake.messages:  # posted, or streamed (a longer answer)
        assert time.monotonic() < deadline, "the worker did not answer the Slack event"
        time.sleep(0.2)
    [message] = list(fake.messages.values())
    assert message["thread_ts"] == event["event"]["ts"]

    children = descendants(stack.proc.pid)
    assert any("llama-server" in " ".join(p.cmdline()) for p in children)
    assert any("functions.worker" in " ".join(p.cmdline()) for p in children)
    pgdata = stack.home / "pgdata"
    assert (pgdata / "postmaster.pid").exists()

    os.killpg(stack.proc.pid, signal.SIGTERM)
    assert stack.proc.wait(timeout=60) == 0
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert not (pgdata / "postmaster.pid").exists(), "embedded Postgres left running"
    with pytest.raises(httpx.ConnectError):
        httpx.get(stack.api + "/healthz")
    assert "stopped" in stack.output[-1]


def test_a_closed_terminal_stops_the_stack_as_ctrl_c_does(tmp_path: Path,
                                                          llama_server_bin: Path) -> None:
    running = start(tmp_path / "home", llama_server_bin)
    try:
        running.wait_for(r"Charla is up", timeout=180)
        running.wait_for(r"worker started", timeout=60)
        children = descendants(running.proc.pid)
        assert any("llama-server" in " ".join(p.cmdline()) for p in children)
        pgdata = running.home / "pgdata"
        assert (pgdata / "postmaster.pid").exists()
        os.killpg(running.proc.pid, signal.SIGHUP)  # what closing the terminal sends
        assert running.proc.wait(timeout=60) == 0
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert not (pgdata / "postmaster.pid").exists(), "embedded Postgres left running"
        # Each child stopped in order, as on SIGTERM, instead of dying of the hangup.
        if running.pump is not None:
            running.pump.join(timeout=10)
        text = "".join(running.output)
        assert text.count("Application shutdown complete") == 2, text
        assert "worker stopped" in text
    finally:
        running.close()


def test_up_refuses_a_taken_port_clearly(tmp_path: Path, llama_server_bin: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        running = start(tmp_path / "home", llama_server_bin, MODEL_SERVER_PORT=str(port))
        code = running.proc.wait(timeout=60)
    running.close()
    assert code == 1
    text = "".join(running.output)
    assert f"port {port} is taken" in text
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()
