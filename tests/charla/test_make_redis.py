"""``make test`` starts the Redis its rate-limit tests need when none is running (issue 22).

The Makefile's ``redis`` target, on a port where nothing listens: afterwards a Redis answers
there. (On 6379, the tests' own port, one is running already: the target then does nothing.)
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("redis-server") is None and shutil.which("apt-get") is None,
                    reason="no redis-server and no way to install one here")
def test_make_redis_starts_one_where_none_answers() -> None:
    port = free_port()
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    done = subprocess.run(["make", "-s", "redis", f"REDIS_PORT={port}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    try:
        assert client.ping()
        assert client.config_get("save") == {"save": ""}  # a throwaway: it saves nothing
    finally:
        with contextlib.suppress(redis.ConnectionError):  # it hangs up as it goes
            client.shutdown(nosave=True)
