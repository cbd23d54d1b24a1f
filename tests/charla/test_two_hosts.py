"""README's "A real model on a GPU host", followed on one machine: the functions' host runs
``charla up`` pointed at a model server elsewhere (``MODEL_SERVER_URL``); the model host
fetches its model with ``charla model fetch`` (from a stand-in hub), is given the functions'
public service key, and runs ``python -m model_server`` with the README's settings
(``CHARLA_ENGINE_ARGS="-ngl 99"``, which a CPU build of llama-server accepts and ignores). A
Slack mention is then answered by the model the other host serves.

What this cannot show is the GPU itself: the CUDA build and its speed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model_server.engines.llama_server import bundled_model_path
from shared.jwt_tokens import TokenSigner, generate_ed25519_pair
from shared.settings import Settings
from tests.charla.test_model_fetch import CHARLA, REPO, Hub
from tests.charla.test_up import SLACK_SECRET, descendants, mention_slack, start
from tests.conftest import ENGINE_THREADS, ServerThread, free_port
from tests.fakes.slack_api import BOT_TOKEN as SLACK_TOKEN
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.slow

MODEL_FILE = "Model-8B-Instruct-Q4_K_M.gguf"
MODEL_NAME = "llama-3.1-8b-instruct"


@pytest.fixture
def hub() -> Iterator[str]:
    stand_in = Hub({MODEL_FILE: bundled_model_path().read_bytes()})
    server = ServerThread(stand_in.app()).start()
    yield server.url
    server.stop()


@pytest.fixture
def fake_slack() -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack()
    server = ServerThread(fake.app).start()
    yield fake, server.url
    server.stop()


def _wait(what: str, ready: object, timeout: float, *procs: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def _health(url: str) -> dict[str, str]:
    try:
        body: dict[str, str] = httpx.get(url + "/healthz", timeout=5).json()
        return body
    except httpx.HTTPError:
        return {}


def test_the_functions_answer_with_the_model_another_host_serves(
    tmp_path: Path, llama_server_bin: Path, hub: str, fake_slack: tuple[FakeSlack, str]
) -> None:
    model_port = free_port()
    model_url = f"http://127.0.0.1:{model_port}"
    functions_home = tmp_path / "functions-host" / ".charla"
    functions = start(functions_home, llama_server_bin, MODEL_SERVER_URL=model_url,
                      CHARLA_MODEL_NAME=MODEL_NAME, SLACK_SIGNING_SECRET=SLACK_SECRET,
                      SLACK_BOT_TOKEN=SLACK_TOKEN, SLACK_API_URL=fake_slack[1])
    gateway: subprocess.Popen[str] | None = None
    try:
        functions.wait_for(r"Charla is up", timeout=180)
        assert f"using the model server at {model_url}" in "".join(functions.output)
        assert _health(functions.api)["model_server"] != "ok"  # nothing serves it yet

        # The model host: a folder of its own, the model fetched as README says.
        model_host = tmp_path / "model-host"
        model_host.mkdir()
        fetched = subprocess.run(
            [*CHARLA, "model", "fetch", REPO, MODEL_FILE, "--dir", str(model_host / "models")],
            cwd=model_host, text=True,
            capture_output=True, timeout=120, check=False,
            env={**os.environ, "HF_ENDPOINT": hub, "HF_HOME": str(model_host / "hf-home"),
                 "HF_HUB_DISABLE_TELEMETRY": "1"})
        assert fetched.returncode == 0, fetched.stderr
        name, model_path = fetched.stdout.strip().split("=", 1)
        assert name == "CHARLA_MODEL_PATH" and Path(model_path).is_relative_to(model_host)

        public_key = (functions_home / "service_ed25519.pub").read_text()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CHARLA_", "MODEL_SERVER_", "DATABASE_URL"))}
        env.update({
            "CHARLA_MODEL_PATH": model_path,
            "CHARLA_LLAMA_SERVER_BIN": str(llama_server_bin),
            "CHARLA_ENGINE_ARGS": "-ngl 99",
            "CHARLA_MODEL_NAME": MODEL_NAME,
            "CHARLA_ENGINE_PARALLEL": "2",
            "CHARLA_ENGINE_CTX_SIZE": "4096",
            "CHARLA_ENGINE_THREADS": ENGINE_THREADS,
            "CHARLA_SERVICE_PUBLIC_KEY": public_key,
            "CHARLA_MODEL_SERVER_HOST": "127.0.0.1",
            "MODEL_SERVER_PORT": str(model_port),
            "PYTHONUNBUFFERED": "1",
        })
        gateway = subprocess.Popen([sys.executable, "-m", "model_server"], cwd=model_host,
                                   env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, text=True,
                                   start_new_session=True)
        _wait("a model server", lambda: _health(model_url).get("status") == "ok", 180, gateway)
        engine = [p.cmdline() for p in descendants(gateway.pid)
                  if "llama-server" in " ".join(p.cmdline())]
        assert len(engine) == 1 and model_path in engine[0]
        assert engine[0][-2:] == ["-ngl", "99"]
        _wait("the functions seeing it", lambda: _health(functions.api).get("model_server")
              == "ok", 60, functions.proc)

        # A Slack mention, answered by the other host's model.
        event, acked = mention_slack(functions.api)
        assert acked.status_code == 200
        fake = fake_slack[0]
        _wait("a Slack answer", lambda: bool(fake.messages), 120, functions.proc, gateway)
        [message] = list(fake.messages.values())
        assert message["thread_ts"] == event["event"]["ts"] and message["text"].strip()

        # Only the functions' key opens the gateway: a token another key signed is refused.
        settings = Settings.from_env({})
        foreign = TokenSigner(private_key=generate_ed25519_pair()[0],
                              audience=settings.service_audience,
                              issuer=settings.service_issuer).sign("functions", ttl_s=60)
        refused = httpx.post(model_url + "/v1/chat/completions", timeout=10,
                             headers={"Authorization": "Bearer " + foreign},
                             json={"messages": [{"role": "user", "content": "Hi"}]})
        assert refused.status_code == 401
        assert not any("llama-server" in " ".join(p.cmdline())
                       for p in descendants(functions.proc.pid))
    finally:
        functions.close()
        if gateway is not None and gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(gateway.pid, signal.SIGKILL)
                gateway.wait()
