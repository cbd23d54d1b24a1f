"""The OpenAI-compatible API when what it talks to fails, end to end: a model server that
stalls, hangs up, never answers or is down (stand-ins on loopback sockets), a client that
leaves mid-answer, and Postgres restarting under load. Each is answered with why, audited, and
recovered from; the API when all is well: tests/functions/api/test_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid

import httpx
import pytest

from tests.conftest import Api, api_env, free_port, make_settings, start_api
from tests.functions.api.test_api import QUESTION, audit_rows, wait_for_rows


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
