"""A stream whose engine dies mid-answer ends with one error shape, at the gateway and the API.

The real chain on a gateway of its own (its llama-server is killed here): the first event is
awaited, the engine is killed with SIGKILL, and the stream must end with OpenAI's error shape
and a ``code`` saying why, never ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.jwt_tokens import TokenSigner
from tests.conftest import (
    Api,
    Gateway,
    api_env,
    gateway_env,
    make_settings,
    start_api,
    start_gateway,
)
from tests.functions.api.test_api import wait_for_rows

LONG = {"messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 2000, "stream": True}


@pytest.fixture(scope="module")
def mortal(service_keys: tuple[str, str], llama_server_bin: Path, redis_url: str,
           pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Api]]:
    """A gateway whose engine the tests kill, and an API in front of it."""
    settings = make_settings(**gateway_env(service_keys, llama_server_bin, redis_url,
                                           tmp_path_factory.mktemp("mortal"),
                                           CHARLA_ENGINE_PARALLEL="1",
                                           CHARLA_ENGINE_CTX_SIZE="4096"))
    server, engine = start_gateway(settings, llama_server_bin)
    signer = TokenSigner(private_key=service_keys[0], audience=settings.service_audience,
                         issuer=settings.service_issuer)
    gateway = Gateway(server.url, settings, signer, engine)
    api_settings = make_settings(**api_env(service_keys, server.url, pg_url, redis_url))
    api_server = start_api(api_settings)
    yield gateway, Api(api_server.url, api_settings, api_server)
    api_server.stop()
    server.stop()


async def _healthy(gateway: Gateway, http: httpx.AsyncClient) -> None:
    """Wait for the engine (restarted by the gateway after a kill) to answer again."""
    deadline = time.monotonic() + 90
    while (await http.get(gateway.url + "/healthz")).status_code != 200:
        assert time.monotonic() < deadline, "the engine did not come back"
        await asyncio.sleep(0.2)


async def _kill_mid_stream(url: str, headers: dict[str, str], gateway: Gateway,
                           http: httpx.AsyncClient) -> list[str]:
    """The stream's events, the engine killed once the first words arrived."""
    events: list[str] = []
    async with http.stream("POST", url + "/v1/chat/completions", json=LONG,
                           headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if len(events) == 1:
                proc = gateway.engine._proc
                assert proc is not None
                proc.kill()
    return events


@pytest.mark.parametrize("through", ["gateway", "api"])
async def test_a_stream_whose_engine_dies_ends_with_one_error_shape(
    mortal: tuple[Gateway, Api], http: httpx.AsyncClient, through: str
) -> None:
    gateway, api = mortal
    await _healthy(gateway, http)
    sub = f"mortal-{uuid.uuid4().hex[:6]}"
    if through == "gateway":
        events = await _kill_mid_stream(gateway.url, gateway.headers(sub), gateway, http)
    else:
        events = await _kill_mid_stream(api.url, api.headers(sub), gateway, http)
    assert events[-1] != "[DONE]", "a broken stream must not look finished"
    last = json.loads(events[-1])
    code = "engine_unavailable" if through == "gateway" else "model_server_unavailable"
    assert last == {"error": {"message": last["error"]["message"], "type": "server_error",
                              "param": None, "code": code}}
    assert sum('"error"' in e for e in events) == 1
    if through == "api":
        rows = await wait_for_rows(api, sub, 1)
        assert rows[0]["status"] == 200 and rows[0]["error"] == last["error"]["message"]
