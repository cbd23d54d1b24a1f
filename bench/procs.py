"""Processes the benchmarks start: each engine and app in its own process, as deployed."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.lcp_build import require_working_build
from charla.llamabuild import build
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path
from shared.jwt_tokens import TokenSigner, generate_ed25519_pair
from shared.ports import free_port

PARALLEL = 8
CTX = 32768
REDIS = os.environ.get("CHARLA_BENCH_LIMITS", "redis://127.0.0.1:6379/4")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy")


@contextmanager
def running(cmd: list[str], health: str, env: dict[str, str] | None = None,
            log: Path | None = None, cwd: Path | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, cwd=cwd,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(health, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def llama_cpp_python_server(logdir: Path, *extra: str, model: Path | None = None
                            ) -> Iterator[str]:
    """llama-cpp-python's own OpenAI server on the same model file, with its defaults."""
    require_working_build()
    port = free_port()
    model = model or bundled_model_path()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
           "--model_alias", "smollm2-135m-instruct", *extra]
    with running(cmd, f"http://127.0.0.1:{port}/v1/models", log=logdir / "llama-cpp-python.log"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def llama_server(logdir: Path, name: str, *extra: str) -> Iterator[str]:
    """A ``llama-server`` reached directly, started with the command line the gateway gives it
    (LlamaServerEngine.command) and ``extra`` flags after it, which win; yields its URL."""
    port = free_port()
    engine = LlamaServerEngine(binary=build(), model_path=bundled_model_path(),
                               model="smollm2-135m-instruct", parallel=PARALLEL, ctx_size=CTX)
    with running([*engine.command(port), *extra], f"http://127.0.0.1:{port}/health",
                 log=logdir / f"llama-server-{name}.log"):
        yield f"http://127.0.0.1:{port}"


class Keys:
    def __init__(self) -> None:
        self.private, self.public = generate_ed25519_pair()
        # Message bodies are sealed at rest: the functions and the worker share one data key.
        self.data = "bench:" + base64.b64encode(os.urandom(32)).decode()
        self.signer = TokenSigner(private_key=self.private, audience="charla-model-server",
                                  issuer="charla-functions")

    def service_token(self, sub: str = "bench") -> str:
        return self.signer.sign(sub, ttl_s=3600)


def process_serving(url: str) -> Any:
    """The process listening on ``url``'s port (psutil), to read its CPU time."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return psutil.Process(conn.pid)
    raise RuntimeError(f"nothing listens on {url}")


def engine_url_of(gateway_proc: subprocess.Popen[bytes]) -> str:
    """The loopback URL of the llama-server that a gateway process started as its child."""
    import psutil

    for child in psutil.Process(gateway_proc.pid).children(recursive=True):
        cmd = child.cmdline()
        if cmd and (cmd[0].endswith("llama-server") or "bench.standin_engine" in cmd):
            return f"http://127.0.0.1:{cmd[cmd.index('--port') + 1]}"
    raise RuntimeError("the gateway has no llama-server child")


@contextmanager
def gateway(keys: Keys, logdir: Path, engine: Path | None = None, home: str = "gateway",
            **extra: str) -> Iterator[tuple[str, str]]:
    """Yields the gateway's URL and its engine's (to measure the same engine both ways).

    ``engine`` replaces the ``llama-server`` binary (a stand-in, bench/standin_engine.py)."""
    port = free_port()
    env = {
        "CHARLA_HOME": str(logdir / home),
        "MODEL_SERVER_PORT": str(port),
        "CHARLA_SERVICE_PUBLIC_KEY": keys.public,
        "CHARLA_LLAMA_SERVER_BIN": str(engine or build()),
        "CHARLA_ENGINE_PARALLEL": str(PARALLEL),
        "CHARLA_ENGINE_CTX_SIZE": str(CTX),
        "CHARLA_RATE_LIMIT_STORAGE": REDIS,
        "CHARLA_MODEL_RATE_LIMIT": "1000000/minute",
        "CHARLA_TOKEN_BUDGET": "1000000000/day",
        "CHARLA_LOG_LEVEL": "WARNING",
        **extra,
    }
    with running([sys.executable, "-m", "model_server"], f"http://127.0.0.1:{port}/healthz",
                 env=env, log=logdir / "gateway.log") as proc:
        yield f"http://127.0.0.1:{port}", engine_url_of(proc)


@contextmanager
def functions_app(keys: Keys, model_server: str, database_url: str, api_secret: str,
                  logdir: Path, **extra: str) -> Iterator[str]:
    port = free_port()
    env = {
        "CHARLA_HOME": str(logdir / "functions"),
        "PORT": str(port),
        "MODEL_SERVER_URL": model_server,
        "DATABASE_URL": database_url,
        "CHARLA_SERVICE_PRIVATE_KEY": keys.private,
        "CHARLA_DATA_KEYS": keys.data,
        "CHARLA_API_JWT_SECRET": api_secret,
        "CHARLA_RATE_LIMIT_STORAGE": REDIS,
        "CHARLA_API_RATE_LIMIT": "1000000/minute",
        "CHARLA_ENGINE_PARALLEL": str(PARALLEL),
        "CHARLA_ENGINE_CTX_SIZE": str(CTX),
        "CHARLA_LOG_LEVEL": "WARNING",
        **extra,
    }
    with running([sys.executable, "-m", "functions"], f"http://127.0.0.1:{port}/healthz",
                 env=env, log=logdir / "functions.log"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def worker(keys: Keys, model_server: str, database_url: str, logdir: Path,
           **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m functions.worker`` (no health route: it is up once it logs so)."""
    env = {**os.environ, "CHARLA_HOME": str(logdir / "worker"), "MODEL_SERVER_URL": model_server,
           "DATABASE_URL": database_url, "CHARLA_SERVICE_PRIVATE_KEY": keys.private,
           "CHARLA_DATA_KEYS": keys.data, "CHARLA_RATE_LIMIT_STORAGE": REDIS,
           "CHARLA_ENGINE_PARALLEL": str(PARALLEL), "CHARLA_ENGINE_CTX_SIZE": str(CTX),
           "CHARLA_LOG_LEVEL": "INFO", **extra}
    log = (logdir / "worker.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "functions.worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"worker started" not in (logdir / "worker.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start; see worker.log")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        log.close()


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="charla-bench-"))


def database(logdir: Path, name: str) -> tuple[Any, str]:
    """An embedded Postgres in ``logdir / name``, started and migrated: (it, its URL).

    The caller stops it (``.stop()``); the parts that want a database of their own are handed
    this function by bench.run."""
    from charla.pg import EmbeddedPostgres
    from shared.migrate import migrate

    pg = EmbeddedPostgres(logdir / name)
    url = pg.start()
    asyncio.run(migrate(url))
    return pg, url
