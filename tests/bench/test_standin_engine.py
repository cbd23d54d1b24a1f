"""The benchmark's stand-in engine answers the gateway's engine client as llama-server does,
so the gateway's CPU measured against it is the CPU of the real relay path."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model_server.engines.base import Usage
from model_server.engines.openai_http import OpenAIHTTPProxy
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def standin() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.standin_engine", "--port", str(port),
                             "--alias", "m", "--interval-ms", "2", "--ignored-flag", "x"],
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def test_streams_one_event_per_token_at_its_pace_then_usage(standin: int) -> None:
    proxy = OpenAIHTTPProxy("127.0.0.1", standin)
    usage = Usage()
    events: list[bytes] = []
    started = time.perf_counter()
    async for chunk in proxy.stream({"messages": [], "max_tokens": 40, "stream": True,
                                     "stream_options": {"include_usage": True}},
                                    usage, forward_usage=True):
        events += [e for e in chunk.split(b"\n\n") if e]
    elapsed = time.perf_counter() - started
    datas = [json.loads(e[6:]) for e in events[:-1]]
    assert events[-1] == b"data: [DONE]"
    assert [bool(d["choices"]) for d in datas] == [True] * 40 + [False]
    assert datas[-2]["choices"][0]["finish_reason"] == "length"
    assert usage.completion_tokens == 40
    assert elapsed >= 40 * 0.002  # paced, not one burst
    # The same kept-alive connection serves a whole answer next.
    result = await proxy.complete({"messages": [], "max_tokens": 5}, usage)
    assert result["usage"]["completion_tokens"] == 5
    assert result["choices"][0]["message"]["content"]
    await proxy.close()
