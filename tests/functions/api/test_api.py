"""The OpenAI-compatible API, end to end: openai client → API → gateway → llama.cpp → Postgres."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import openai
import psycopg
import pytest
from psycopg.rows import dict_row

from shared.audit import open_bodies
from shared.crypto import KeyRing
from tests.conftest import API_SECRET, Api

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def openai_client(api: Api, sub: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=api.url + "/v1", api_key=api.token(sub), max_retries=0)


def audit_rows(api: Api, client: str) -> list[dict[str, object]]:
    """The audit rows of ``client``, bodies opened with the stack's data keys."""
    assert api.settings.database_url is not None
    keys = KeyRing.from_settings(api.settings)
    with psycopg.connect(api.settings.database_url.reveal(), row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT client, model, stream, request_messages, answer, body_sealed, "
            "finish_reason, prompt_tokens, completion_tokens, status, error, first_token_ms, "
            "latency_ms FROM api_exchanges WHERE client = %s ORDER BY id", (client,)).fetchall()
    for row in rows:
        row["request_messages"], row["answer"] = open_bodies(keys, row)
    return rows


async def wait_for_rows(api: Api, client: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        rows = audit_rows(api, client)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def test_openai_client_whole_answer_is_audited(api: Api) -> None:
    sub = f"acme-{uuid.uuid4().hex[:6]}"
    async with openai_client(api, sub) as client:
        reply = await client.chat.completions.create(
            model="smollm2-135m-instruct", messages=QUESTION, max_tokens=12, temperature=0)
    text = reply.choices[0].message.content
    assert text
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
    rows = await wait_for_rows(api, sub, 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == 200 and row["stream"] is False and row["error"] is None
    assert row["answer"] == text
    assert row["request_messages"] == QUESTION
    assert row["completion_tokens"] == reply.usage.completion_tokens


async def test_openai_client_streaming(api: Api) -> None:
    sub = f"stream-{uuid.uuid4().hex[:6]}"
    pieces: list[str] = []
    usage = None
    async with openai_client(api, sub) as client:
        stream = await client.chat.completions.create(
            model="smollm2-135m-instruct", messages=QUESTION, max_tokens=24, temperature=0,
            stream=True, stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            if chunk.usage:
                usage = chunk.usage
    answer = "".join(pieces)
    assert answer
    assert usage is not None and usage.completion_tokens > 0
    rows = await wait_for_rows(api, sub, 1)
    assert rows[0]["stream"] is True and rows[0]["error"] is None
    assert rows[0]["answer"] == answer
    assert rows[0]["first_token_ms"] is not None


async def test_streaming_without_include_usage_has_no_usage_chunk(api: Api,
                                                                  http: httpx.AsyncClient) -> None:
    body = {"messages": QUESTION, "max_tokens": 6, "stream": True}
    response = await http.post(api.url + "/v1/chat/completions", json=body, headers=api.headers())
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert all(json.loads(e)["choices"] for e in events[:-1])


async def test_max_tokens_temperature_and_stop_are_honoured(api: Api) -> None:
    async with openai_client(api) as client:
        one = await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "Write a long story about a cat."}],
            max_tokens=3, temperature=0)
        assert one.choices[0].finish_reason == "length"
        assert one.usage is not None and one.usage.completion_tokens == 3
        # With temperature 0 the answer starts the same way each time (only its start: the
        # second run reads the prompt from llama-server's cache, and the arithmetic of another
        # batch shape can tip a late token); a stop sequence cuts it short.
        prompt = [{"role": "user", "content": "List the days of the week, comma separated."}]
        full = await client.chat.completions.create(model="x", messages=prompt, max_tokens=40,
                                                    temperature=0)
        text = full.choices[0].message.content or ""
        again = await client.chat.completions.create(model="x", messages=prompt, max_tokens=40,
                                                     temperature=0)
        words = text.split()
        assert len(words) > 3, text
        assert (again.choices[0].message.content or "").split()[:2] == words[:2]
        # Cut at the first space, which any answer of several words has.
        cut = await client.chat.completions.create(model="x", messages=prompt, max_tokens=40,
                                                   temperature=0, stop=[" "])
        assert cut.choices[0].finish_reason == "stop"
        shown = cut.choices[0].message.content or ""
        assert shown and " " not in shown.strip() and len(shown) < len(text)


async def test_models_lists_the_chat_model(api: Api) -> None:
    async with openai_client(api) as client:
        listed = await client.models.list()
    ids = [m.id for m in listed.data]
    assert ids == [api.settings.model_name]


def _tokens_under_attack(api: Api) -> Iterator[tuple[str, str]]:
    s = api.settings
    now = int(time.time())
    good = {"sub": "mallory", "aud": s.api_jwt_audience, "iss": s.api_jwt_issuer,
            "exp": now + 60}
    yield "expired", api.token("mallory", ttl_s=-600)
    yield "wrong secret", jwt.encode(good, "another-secret-" + "y" * 40, algorithm="HS256")
    yield "wrong audience", jwt.encode({**good, "aud": "x"}, API_SECRET, algorithm="HS256")
    yield "wrong issuer", jwt.encode({**good, "iss": "x"}, API_SECRET, algorithm="HS256")
    yield "alg none", jwt.encode(good, None, algorithm="none")  # type: ignore[arg-type]
    h, p, sig = api.token("mallory").split(".")
    yield "tampered", f"{h}.{p}x.{sig}"
    yield "not a jwt", "hello"


async def test_jwt_attacks_get_401_json(api: Api, http: httpx.AsyncClient) -> None:
    url = api.url + "/v1/chat/completions"
    response = await http.post(url, json={"messages": QUESTION})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    for name, token in _tokens_under_attack(api):
        response = await http.post(url, json={"messages": QUESTION},
                                   headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json()["error"]["message"], name
    async with openai.AsyncOpenAI(base_url=api.url + "/v1", api_key="sk-nope",
                                  max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"{oops", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"messages": []}', 400, "must not be empty"),
        (b'{"messages": [{"role": "user"}]}', 400, "content"),
        # An answer's start is the pipeline's to write (the gateway takes it from the
        # functions only): a client's is refused.
        (b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content":'
         b' "The code is"}]}', 400, "last message must come from the user"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
         "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 4000}', 400,
         "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1' + b"0" * 400
         + b"}", 400, "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "seed": 1' + b"0" * 5000 + b"}",
         400, "too many digits"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(api: Api, http: httpx.AsyncClient, raw: bytes,
                                          status: int, words: str) -> None:
    response = await http.post(api.url + "/v1/chat/completions", content=raw,
                               headers={**api.headers(), "content-type": "application/json"})
    assert response.status_code == status
    assert words in response.json()["error"]["message"]


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),  # without a stream
])
async def test_what_the_api_cannot_give_is_a_400_naming_the_field(
    api: Api, extra: dict[str, object], param: str
) -> None:
    async with openai_client(api) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="x", messages=QUESTION, max_tokens=2,
                                                 extra_body=extra)
    assert err.value.param == param
    assert f"'{param}'" in str(err.value)


async def test_harmless_fields_and_nulls_are_accepted(api: Api, http: httpx.AsyncClient) -> None:
    body = {"messages": QUESTION, "max_tokens": 2, "n": None, "stream": None,
            "user": "u-1", "metadata": {"job": "nightly"}, "store": False,
            "parallel_tool_calls": False, "tool_choice": "none", "top_k": 5}
    response = await http.post(api.url + "/v1/chat/completions", json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"


async def test_oversized_body_is_413_and_too_long_prompt_is_400(api: Api,
                                                                http: httpx.AsyncClient) -> None:
    huge = "x" * (api.settings.max_body_bytes + 10)
    response = await http.post(api.url + "/v1/chat/completions", headers=api.headers(),
                               json={"messages": [{"role": "user", "content": huge}]})
    assert response.status_code == 413
    long = "palabra " * 20_000  # fits the body limit, not the model's context window
    response = await http.post(api.url + "/v1/chat/completions", headers=api.headers(),
                               json={"messages": [{"role": "user", "content": long}]})
    assert response.status_code == 400
    assert "tokens" in response.json()["error"]["message"]


async def test_long_history_is_trimmed_to_the_window_not_refused(
    api: Api, http: httpx.AsyncClient
) -> None:
    sub = f"long-{uuid.uuid4().hex[:6]}"
    history = []
    for i in range(60):
        history += [{"role": "user", "content": f"Question {i}: " + "bla " * 60},
                    {"role": "assistant", "content": f"Answer {i}: " + "ok " * 60}]
    messages = [{"role": "system", "content": "Be brief."}, *history,
                {"role": "user", "content": "Say yes."}]
    response = await http.post(api.url + "/v1/chat/completions", headers=api.headers(sub),
                               json={"messages": messages, "max_tokens": 4})
    assert response.status_code == 200, response.text
    row = (await wait_for_rows(api, sub, 1))[0]
    sent = row["request_messages"]
    assert isinstance(sent, list)
    assert sent[0] == messages[0] and sent[-1] == messages[-1]
    assert len(sent) < len(messages)


# The API's request limit: tests/functions/api/test_rate_limit.py. When the model server, a
# client or Postgres fails: tests/functions/api/test_api_faults.py.
