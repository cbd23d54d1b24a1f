"""The OpenAI-compatible API, end to end: openai client → API → gateway → llama.cpp → Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
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
from tests.conftest import API_SECRET, Api, api_env, free_port, make_settings, start_api

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
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
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


# The API's request limit: tests/functions/api/test_rate_limit.py.


class BlackHole:
    """A TCP server that accepts connections and never answers: a hung model server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._answer_quietly, args=(conn,), daemon=True).start()

    def _answer_quietly(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # closed by the test
            self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        """Never answer."""

    @staticmethod
    def read_head(conn: socket.socket) -> None:
        """Read the request up to the end of its headers."""
        seen = b""
        while b"\r\n\r\n" not in seen:
            seen += conn.recv(65536)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


FIRST_EVENT = (b'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, '
               b'"model": "m", "choices": [{"index": 0, "finish_reason": null, '
               b'"delta": {"role": "assistant", "content": "Paris"}}]}\n\n')


class BreakingStream(BlackHole):
    """A model server that starts a streamed answer, then stalls or hangs up (``hang_up``)."""

    def __init__(self, hang_up: bool) -> None:
        self.hang_up = hang_up
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        self.read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n%s\r\n" % (len(FIRST_EVENT), FIRST_EVENT))
        if self.hang_up:
            conn.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize(("hang_up", "code"), [(False, "model_server_timeout"),
                                               (True, "model_server_unavailable")])
async def test_a_stream_the_model_server_breaks_off_ends_with_why_and_is_audited(
    service_keys: tuple[str, str], api: Api, redis_url: str, http: httpx.AsyncClient,
    hang_up: bool, code: str
) -> None:
    broken = BreakingStream(hang_up)
    assert api.settings.database_url is not None
    settings = make_settings(**api_env(
        service_keys, broken.url, api.settings.database_url.reveal(), redis_url,
        CHARLA_MODEL_FIRST_TOKEN_TIMEOUT="1"))
    server = start_api(settings)
    sub = f"broken-{uuid.uuid4().hex[:6]}"
    try:
        response = await http.post(server.url + "/v1/chat/completions", headers=api.headers(sub),
                                   json={"messages": QUESTION, "stream": True})
        rows = await wait_for_rows(api, sub, 1)
    finally:
        server.stop()
        broken.close()
    assert response.status_code == 200
    events = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    error = events[-1]["error"]
    assert error["code"] == code and error["type"] == "server_error"
    assert ("in time" if code.endswith("timeout") else "unavailable") in error["message"]
    assert rows[0]["status"] == 200 and rows[0]["answer"] == "Paris"
    assert rows[0]["error"] == error["message"]


async def test_a_stream_its_client_leaves_is_audited_as_abandoned(
    api: Api, http: httpx.AsyncClient
) -> None:
    sub = f"gone-{uuid.uuid4().hex[:6]}"
    body = {"messages": [{"role": "user", "content": "Write a long story about a cat."}],
            "max_tokens": 400, "temperature": 0, "stream": True}
    async with http.stream("POST", api.url + "/v1/chat/completions", json=body,
                           headers=api.headers(sub)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                break  # leaving the block drops the connection mid-answer
    row = (await wait_for_rows(api, sub, 1))[0]
    assert row["error"] == "client_disconnected" and row["finish_reason"] is None


class Waiter(BlackHole):
    """A model server that reads the request and waits; ``dropped`` is set when its caller
    closes the connection (what makes llama-server stop working on it)."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.dropped = threading.Event()
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        self.read_head(conn)
        self.asked.set()
        while conn.recv(65536):
            pass
        self.dropped.set()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_hangs_up_before_the_answer_drops_the_model_servers_request(
    service_keys: tuple[str, str], api: Api, redis_url: str, http: httpx.AsyncClient,
    stream: bool
) -> None:
    waiter = Waiter()
    assert api.settings.database_url is not None
    settings = make_settings(**api_env(
        service_keys, waiter.url, api.settings.database_url.reveal(), redis_url,
        CHARLA_MODEL_FIRST_TOKEN_TIMEOUT="30", CHARLA_MODEL_TIMEOUT="30"))
    server = start_api(settings)
    sub = f"quitter-{uuid.uuid4().hex[:6]}"
    try:
        asked = asyncio.create_task(http.post(
            server.url + "/v1/chat/completions", headers=api.headers(sub),
            json={"messages": QUESTION, "stream": stream}))
        assert await asyncio.to_thread(waiter.asked.wait, 10), "the model server was not asked"
        asked.cancel()  # the client gives up: its connection closes
        with contextlib.suppress(asyncio.CancelledError):
            await asked
        # Dropped at once, not when the model server's 30-second timeout runs out.
        assert await asyncio.to_thread(waiter.dropped.wait, 5), "the request was not dropped"
        rows = await wait_for_rows(api, sub, 1)
    finally:
        server.stop()
        waiter.close()
    assert len(rows) == 1
    assert rows[0]["status"] == 499 and rows[0]["error"] == "client_disconnected"
    assert rows[0]["answer"] is None


async def test_model_server_slow_is_504_within_the_timeout(
    service_keys: tuple[str, str], api: Api, redis_url: str, http: httpx.AsyncClient
) -> None:
    hole = BlackHole()
    assert api.settings.database_url is not None
    settings = make_settings(**api_env(
        service_keys, hole.url, api.settings.database_url.reveal(),
        redis_url, CHARLA_MODEL_FIRST_TOKEN_TIMEOUT="1", CHARLA_MODEL_TIMEOUT="1.5"))
    server = start_api(settings)
    try:
        for stream in (False, True):
            # The black hole never answers: only the API's own 1 s and 1.5 s can end this
            # before the client gives up (30 s; the defaults are 60 s and 120 s).
            response = await http.post(server.url + "/v1/chat/completions", headers=api.headers(),
                                       json={"messages": QUESTION, "stream": stream}, timeout=30)
            assert response.status_code == 504
            assert "did not answer in time" in response.json()["error"]["message"]
    finally:
        server.stop()
        hole.close()


async def test_model_server_down_is_503_and_recovers_when_it_returns(
    service_keys: tuple[str, str], api: Api, redis_url: str, http: httpx.AsyncClient
) -> None:
    from tests.conftest import ServerThread

    port = free_port()
    assert api.settings.database_url is not None
    settings = make_settings(**api_env(service_keys, f"http://127.0.0.1:{port}",
                                       api.settings.database_url.reveal(), redis_url))
    server = start_api(settings)
    try:
        for stream in (False, True):
            response = await http.post(server.url + "/v1/chat/completions",
                                       headers=api.headers(),
                                       json={"messages": QUESTION, "stream": stream})
            assert response.status_code == 503
            assert response.headers["retry-after"]
            assert "unavailable" in response.json()["error"]["message"]
        health = (await http.get(server.url + "/healthz")).json()
        assert health == {"status": "degraded", "database": "ok", "model_server": "unavailable"}
        # The model server comes back on the same port: a proxy in front of the real one.
        relay = ServerThread(_forwarder(api.settings.model_server_url), port).start()
        try:
            response = await http.post(server.url + "/v1/chat/completions",
                                       headers=api.headers(),
                                       json={"messages": QUESTION, "max_tokens": 4})
            assert response.status_code == 200
        finally:
            relay.stop()
    finally:
        server.stop()


def _forwarder(target: str):  # type: ignore[no-untyped-def]
    """A tiny ASGI reverse proxy to the real model server."""
    from starlette.requests import Request
    from starlette.responses import Response

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        async with httpx.AsyncClient(base_url=target, timeout=60) as client:
            upstream = await client.request(
                request.method, request.url.path, content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k != "host"})
        response = Response(upstream.content, status_code=upstream.status_code,
                            media_type=upstream.headers.get("content-type"))
        await response(scope, receive, send)

    return app


async def test_postgres_restart_under_load(api: Api, postgres, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    sub = f"load-{uuid.uuid4().hex[:6]}"
    url = api.url + "/v1/chat/completions"
    body = {"messages": QUESTION, "max_tokens": 2}

    async def one() -> int:
        response = await http.post(url, json=body, headers=api.headers(sub), timeout=30)
        return response.status_code

    async def load(seconds: float) -> list[int]:
        codes: list[int] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            codes += await asyncio.gather(*(one() for _ in range(4)))
        return codes

    before = await load(0.5)
    restart = asyncio.to_thread(lambda: (postgres.stop(), postgres.start()))
    during, _ = await asyncio.gather(load(3.0), restart)
    # Answers keep coming: the database is only on the audit path, and no request hangs.
    assert set(before + during) == {200}
    # The pool drops its dead connections and audits again once the server is back.
    marker = f"after-{uuid.uuid4().hex[:6]}"
    deadline = time.monotonic() + 20
    while True:
        response = await http.post(url, json=body, headers=api.headers(marker))
        assert response.status_code == 200
        if audit_rows(api, marker):
            break
        assert time.monotonic() < deadline, "audit log did not recover after the restart"
        await asyncio.sleep(0.2)
    health = (await http.get(api.url + "/healthz")).json()
    assert health["database"] == "ok"
