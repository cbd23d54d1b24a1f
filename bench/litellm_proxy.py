"""LiteLLM's proxy, installed and started for ``bench.run gateways``, as a team would run it.

LiteLLM is installed in a virtual environment of its own (its pins clash with Charla's), once,
under ~/.cache/charla. Its per-key budgets need its database, which it reaches through Prisma;
Prisma downloads its engines from binaries.prisma.sh at first use, which this machine cannot
reach. So its keys come from a custom auth hook (LiteLLM's documented way to bring your own
keys): it looks the key up and hands LiteLLM the key's limits, which LiteLLM then enforces
itself, in Redis, shared by every proxy process: ``rpm_limit`` (requests a minute) and
``tpm_limit`` (tokens a minute), the only per-key token cap it enforces without a database.
A dictionary lookup is cheaper than LiteLLM's own key check, so this favours LiteLLM.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import procs
from shared.ports import free_port

VERSION = "1.82.6"  # 1.110's proxy extra needs a package the index does not have
MODEL = "smollm2-135m-instruct"
REDIS_DB = 5  # LiteLLM's counters; the bench empties it before each proxy starts

AUTH = '''"""Custom auth for the benchmark: the keys and their limits come from the environment."""
import os

from litellm.proxy._types import UserAPIKeyAuth

KEYS = dict(pair.split("=", 1) for pair in os.environ["BENCH_LITELLM_KEYS"].split(","))
RPM = int(os.environ["BENCH_LITELLM_RPM"])
TPM = int(os.environ["BENCH_LITELLM_TPM"])


async def user_api_key_auth(request, api_key):
    user = KEYS.get(api_key)
    if user is None:
        raise Exception("unknown key")
    return UserAPIKeyAuth(api_key=api_key, user_id=user, rpm_limit=RPM, tpm_limit=TPM)
'''

CONFIG = """model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {engine}/v1
      api_key: none
general_settings:
  custom_auth: bench_auth.user_api_key_auth
litellm_settings:
  cache: true
  cache_params:
    type: redis
    host: 127.0.0.1
    port: 6379
    db: {db}
    supported_call_types: []
"""


def venv() -> Path:
    """LiteLLM's own virtual environment, made on first use (a minute or two, from PyPI)."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "charla"
    path = home / f"litellm-{VERSION}"
    if not (path / ".installed").exists():
        print(f"[gateways] installing LiteLLM {VERSION} in {path}", flush=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "--quiet",
                        f"litellm[proxy]=={VERSION}"], check=True, env=env)
        (path / ".installed").touch()
    return path


def version() -> str:
    out = subprocess.run([str(venv() / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def flush_counters() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


@contextmanager
def proxy(logdir: Path, name: str, engine: str, keys: dict[str, str], rpm: int, tpm: int
          ) -> Iterator[str]:
    """``litellm --config`` in front of ``engine``, on 127.0.0.1; yields its URL."""
    home = logdir / f"litellm-{name}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "bench_auth.py").write_text(AUTH)
    (home / "config.yaml").write_text(CONFIG.format(model=MODEL, engine=engine, db=REDIS_DB))
    port = free_port()
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it fetches a price list at start
        "LITELLM_LOG": "ERROR",
        "PYTHONPATH": str(home),
        "BENCH_LITELLM_KEYS": ",".join(f"{k}={user}" for k, user in keys.items()),
        "BENCH_LITELLM_RPM": str(rpm),
        "BENCH_LITELLM_TPM": str(tpm),
    }
    cmd = [str(venv() / "bin" / "litellm"), "--config", str(home / "config.yaml"),
           "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    with procs.running(cmd, f"http://127.0.0.1:{port}/health/liveliness", env=env,
                       log=logdir / f"litellm-{name}.log", cwd=home):
        yield f"http://127.0.0.1:{port}"
