"""The upstream engine (TGI, vLLM, llama-server at a URL) through huggingface_hub's client.

It is pointed at a real llama.cpp server, which speaks the same OpenAI-compatible routes, so
the code path is the one used against a TGI or vLLM host.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from model_server.engines.base import EngineRejected, EngineUnavailable, Usage
from model_server.engines.inference_client import InferenceClientEngine
from tests.conftest import Gateway, ServerThread, free_port, gateway_env, make_settings

BODY = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0}


@pytest.fixture
async def upstream(gateway: Gateway) -> AsyncIterator[InferenceClientEngine]:
    engine = InferenceClientEngine(base_url=f"http://127.0.0.1:{gateway.engine.port}",
                                   model="upstream-model")
    await engine.start()
    yield engine
    await engine.close()


async def test_whole_answer(upstream: InferenceClientEngine) -> None:
    assert await upstream.ready()
    usage = Usage()
    result = await upstream.complete(dict(BODY), usage)
    assert result["choices"][0]["message"]["content"]
    assert result["model"] == "upstream-model"
    assert 0 < usage.completion_tokens <= 8


async def test_stream_and_usage(upstream: InferenceClientEngine) -> None:
    usage = Usage()
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    events = [e async for e in upstream.stream(body, usage, forward_usage=False)]
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["choices"] for c in chunks)  # the usage-only chunk was not forwarded
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text
    assert usage.completion_tokens > 0


async def test_context_overflow_is_reported_as_such(upstream: InferenceClientEngine) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": "word " * 20_000}]}
    with pytest.raises(EngineRejected) as err:
        await upstream.complete(body, Usage())
    assert err.value.code == "context_length_exceeded"
    assert "context" in err.value.message


async def test_unreachable_upstream_is_unavailable() -> None:
    engine = InferenceClientEngine(base_url=f"http://127.0.0.1:{free_port()}", model="m")
    try:
        assert not await engine.ready()
        with pytest.raises(EngineUnavailable):
            await engine.complete(dict(BODY), Usage())
        with pytest.raises(EngineUnavailable):
            [e async for e in engine.stream({**BODY, "stream": True}, Usage(),
                                            forward_usage=False)]
    finally:
        await engine.close()


async def test_gateway_in_upstream_mode(gateway: Gateway, service_keys: tuple[str, str],
                                        tmp_path_factory: pytest.TempPathFactory,
                                        redis_url: str) -> None:
    """The whole gateway with CHARLA_ENGINE=upstream, as on a GPU host running vLLM or TGI."""
    from model_server.main import create

    env = gateway_env(service_keys, gateway.engine._binary, redis_url,
                      tmp_path_factory.mktemp("up"), CHARLA_ENGINE="upstream",
                      CHARLA_ENGINE_URL=f"http://127.0.0.1:{gateway.engine.port}")
    settings = make_settings(**env)
    server = ServerThread(create(settings)).start()
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            assert (await http.get(server.url + "/healthz")).status_code == 200
            response = await http.post(server.url + "/v1/chat/completions", json=BODY,
                                       headers=gateway.headers())
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"]
            # An answer's start is left out for an engine that would not go on from it (the
            # llama-server behind this one would, and would give it back).
            start = "Every employee of the Lisbon office has"
            primed = {**BODY, "messages": [*BODY["messages"],
                                           {"role": "assistant", "content": start}]}
            response = await http.post(server.url + "/v1/chat/completions", json=primed,
                                       headers=gateway.headers())
            assert response.status_code == 200, response.text
            assert not response.json()["choices"][0]["message"]["content"].startswith(start)
    finally:
        server.stop()
