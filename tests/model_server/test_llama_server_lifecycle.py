"""How llama-server stops with the gateway that started it: by one SIGTERM from the gateway when
its process group is signalled (Ctrl-C, ``charla up`` stopping), by the kernel when the gateway
is killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path

# A gateway reduced to the engine's lifecycle: start it, print llama-server's pid, close it on
# SIGTERM or SIGINT, as uvicorn's lifespan does.
GATEWAY = """
import asyncio, signal, sys
from pathlib import Path
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path

async def main():
    engine = LlamaServerEngine(binary=Path(sys.argv[1]), model_path=bundled_model_path(),
                               model="smollm2", parallel=1, ctx_size=1024,
                               log_path=Path(sys.argv[2]))
    await engine.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(engine.pid, flush=True)
    await stop.wait()
    await engine.close()
    print("closed", flush=True)

asyncio.run(main())
"""


@dataclass
class Running:
    gateway: subprocess.Popen[str]
    llama: psutil.Process
    log: Path


@pytest.fixture
def running(llama_server_bin: Path, tmp_path: Path) -> Iterator[Running]:
    log = tmp_path / "llama-server.log"
    gateway = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, str(llama_server_bin), str(log)],
        stdout=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    try:
        assert gateway.stdout is not None
        line = gateway.stdout.readline()
        assert line.strip().isdigit(), f"the gateway did not start llama-server: {line!r}"
        yield Running(gateway, psutil.Process(int(line)), log)
    finally:
        if gateway.poll() is None:
            gateway.kill()
        gateway.communicate()


def _gone(proc: psutil.Process, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_gateways_group_stops_llama_server_with_one_signal(
    running: Running, sig: signal.Signals
) -> None:
    assert running.llama.ppid() == running.gateway.pid
    os.killpg(running.gateway.pid, sig)
    out, _ = running.gateway.communicate(timeout=30)
    assert running.gateway.returncode == 0
    assert out.strip() == "closed"
    assert _gone(running.llama, within_s=30)
    # A second signal makes llama-server exit() from its signal handler, which can hang for
    # good: it must have had only the gateway's.
    log = running.log.read_text(errors="replace")
    assert "Received second interrupt" not in log
    assert "cleaning up before exit" in log


def test_a_killed_gateway_takes_llama_server_with_it(running: Running) -> None:
    running.gateway.kill()
    running.gateway.wait()
    assert _gone(running.llama, within_s=30), "llama-server outlived its gateway"


async def test_closing_the_engine_while_it_restarts_llama_server_stops_the_new_one(
    llama_server_bin: Path, tmp_path: Path
) -> None:
    engine = LlamaServerEngine(binary=llama_server_bin, model_path=bundled_model_path(),
                               model="smollm2", parallel=1, ctx_size=1024,
                               log_path=tmp_path / "llama-server.log")
    await engine.start()
    assert engine.pid is not None
    first = psutil.Process(engine.pid)
    first.kill()
    for _ in range(3000):  # until it notices (once the kernel lets it reap the child)
        assert not await engine.ready()
        if engine._restart_task is not None:
            break
        await asyncio.sleep(0.01)
    restart = engine._restart_task
    assert restart is not None, "the engine did not notice that llama-server died"
    for _ in range(3000):
        if engine.pid not in (None, first.pid):
            break
        await asyncio.sleep(0.01)
    assert engine.pid is not None and engine.pid != first.pid
    second = psutil.Process(engine.pid)
    await engine.close()  # the gateway shutting down, the new one still loading
    assert restart.done() and (restart.cancelled() or restart.exception() is None)
    assert _gone(second, within_s=30)
    assert engine.pid is None


async def test_a_port_taken_before_llama_server_binds_it_is_replaced_by_another(
    llama_server_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from model_server.engines import llama_server

    squatter = socket.socket()  # another process listening where the engine was about to
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real = llama_server.free_port
    monkeypatch.setattr(llama_server, "free_port", lambda: next(ports, None) or real())
    engine = LlamaServerEngine(binary=llama_server_bin, model_path=bundled_model_path(),
                               model="smollm2", parallel=1, ctx_size=1024,
                               log_path=tmp_path / "llama-server.log")
    try:
        await engine.start()
        assert engine.port != taken
        assert await engine.ready()
    finally:
        await engine.close()
        squatter.close()


async def test_a_llama_server_that_exits_for_another_reason_is_not_tried_again(
    tmp_path: Path,
) -> None:
    from model_server.engines.base import EngineUnavailable

    starts = tmp_path / "starts"
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!/bin/sh\necho started >> {starts}\nexit 1\n")
    binary.chmod(0o755)
    engine = LlamaServerEngine(binary=binary, model_path=bundled_model_path(), model="smollm2",
                               parallel=1, ctx_size=1024)
    with pytest.raises(EngineUnavailable, match="exited"):
        await engine.start()
    assert starts.read_text().count("started") == 1
