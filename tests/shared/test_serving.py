"""uvicorn as both apps are served (shared/serving.py): how long a slow client may hold a
connection, how much of a request's headers is read, and what a request beyond the connection
limit gets. Real sockets throughout: these are socket behaviours.
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shared.errors import BadRequest
from shared.http import bad_request, read_body, unexpected
from shared.serving import KEEP_ALIVE_S, MAX_HEADER_BYTES, server_options
from shared.settings import Settings
from tests.shared.served import (
    capture_all_logs,
    connect,
    request,
    served,
    until,
)

called: list[str] = []


def app(timeout_s: float = 30) -> Starlette:
    async def hello(request: Request) -> Response:
        called.append(request.url.path)
        return PlainTextResponse("hello")

    async def slow(request: Request) -> Response:
        # An answer that takes longer than the header deadline: that deadline must not cut it.
        await asyncio.sleep(timeout_s * 2)
        return PlainTextResponse("slow")

    async def echo(request: Request) -> Response:
        return Response(await read_body(request, 1024, timeout_s=timeout_s))

    return Starlette(routes=[Route("/hello", hello), Route("/slow", slow),
                             Route("/echo", echo, methods=["POST"])],
                     exception_handlers={BadRequest: bad_request, Exception: unexpected})


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_the_options_are_explicit() -> None:
    options = server_options(settings(CHARLA_MAX_CONNECTIONS="40", CHARLA_BODY_TIMEOUT="7"))
    assert options["limit_concurrency"] == 41  # uvicorn counts the asking connection too
    assert options["timeout_keep_alive"] == KEEP_ALIVE_S == 5
    assert options["http"].header_timeout_s == 7
    assert settings().body_timeout_s == 10 and settings().max_connections == 500


@pytest.mark.parametrize("sent", [b"", b"GET /hel", b"GET /hello HTTP/1.1\r\nHost: x\r\n"])
async def test_a_connection_whose_headers_do_not_come_is_closed(sent: bytes) -> None:
    called.clear()
    with served(app(), settings(CHARLA_BODY_TIMEOUT="0.3")) as server:
        async with connect(server.port) as conn:
            await conn.send(sent)
            assert await conn.closed_by_server()
        await server.idle()
    assert called == []


async def test_after_an_answer_the_next_requests_headers_have_a_deadline_too() -> None:
    # Any byte stops uvicorn's keep-alive timer: without a deadline of its own, half a request
    # line after an answer would hold the connection for ever.
    # (A deadline long enough for the first request to come whole on a busy machine.)
    with served(app(), settings(CHARLA_BODY_TIMEOUT="1")) as server:
        async with connect(server.port) as conn:
            await conn.send(request("GET", "/hello"))
            assert (await conn.response())[0] == 200
            await conn.send(b"GET /hel")
            assert await conn.closed_by_server()


async def test_the_header_deadline_does_not_cut_a_slow_answer() -> None:
    # The answer takes twice the deadline (the engine at work); the connection then serves
    # the next request as a kept-alive one.
    with served(app(1), settings(CHARLA_BODY_TIMEOUT="1")) as server:
        async with connect(server.port) as conn:
            await conn.send(request("GET", "/slow"))
            status, _, body = await conn.response()
            assert (status, body) == (200, b"slow")
            await conn.send(request("GET", "/hello"))
            assert (await conn.response())[0] == 200


async def test_headers_over_the_limit_are_431_and_never_reach_the_app(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    called.clear()
    with served(app(), settings()) as server:
        async with connect(server.port) as conn:
            filler = b"a" * 1000
            head = b"GET /hello HTTP/1.1\r\nHost: x\r\n"
            await conn.send(head + b"".join(b"X-Fill-%d: %s\r\n" % (i, filler)
                                            for i in range(40)) + b"\r\n")
            status, headers, body = await conn.response()
            assert await conn.closed_by_server()
        async with connect(server.port) as conn:  # just under the limit: served
            room = MAX_HEADER_BYTES - 200
            await conn.send(request("GET", "/hello", headers={"X-Fill": "a" * room}))
            assert (await conn.response())[0] == 200
        await server.idle()
    assert status == 431
    assert headers["connection"] == "close"
    assert body == f"request headers are over {MAX_HEADER_BYTES} bytes".encode()
    assert called == ["/hello"]  # the second request only
    # uvicorn's one line for a request it could not read, as for any malformed one
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")
            and "Invalid HTTP" in r.getMessage()] == ["Invalid HTTP request received."]


async def test_beyond_the_connection_limit_a_request_is_503_until_a_slow_client_is_dropped(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    with served(app(), settings(CHARLA_MAX_CONNECTIONS="2")) as server:
        # Two slow clients hold every connection: headers sent, the body never.
        async with connect(server.port) as first, connect(server.port) as second:
            for conn in (first, second):
                await conn.send(request("POST", "/echo", b"", length=100))
            await until(lambda: server.connections == 2)
            async with connect(server.port) as third:
                await third.send(request("GET", "/hello"))
                status, headers, _ = await third.response()
                assert (status, headers["connection"]) == (503, "close")
                assert await third.closed_by_server()
            await second.close()  # one slow client goes
            await until(lambda: server.connections == 1)
            async with connect(server.port) as fourth:
                await fourth.send(request("GET", "/hello"))
                assert (await fourth.response())[0] == 200
        await server.idle()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["Exceeded concurrency limit."]


async def test_slow_clients_free_their_connections_by_the_deadline() -> None:
    # With the limit reached by clients that send nothing, the next request gets in once the
    # deadline has dropped them: nobody holds a connection longer than that.
    with served(app(1), settings(CHARLA_MAX_CONNECTIONS="2",
                                 CHARLA_BODY_TIMEOUT="1")) as server:
        async with connect(server.port) as first, connect(server.port) as second:
            await first.send(request("POST", "/echo", b"", length=100))  # its body: 408
            await second.send(b"GET /hel")  # its headers: closed
            assert (await first.response())[0] == 408
            assert await second.closed_by_server()
            await until(lambda: server.connections == 0)
            async with connect(server.port) as third:
                await third.send(request("GET", "/hello"))
                assert (await third.response())[0] == 200
