"""``read_body`` over a real socket: the size limit on a body of no declared length, the
deadline (408), a client that leaves half-way (one short line, no traceback), and Lambda.

The app is the smallest that reads a body as every route does, with the handlers every app
registers; tests/functions/test_hostile_input.py sends the same to the real routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.errors import BadRequest
from shared.http import bad_request, read_body, unexpected
from shared.settings import Settings
from tests.aws.events import http_event
from tests.shared.served import (
    assert_at_most_one_short_line,
    capture_all_logs,
    chunked,
    connect,
    request,
    served,
    until,
)

LIMIT = 1024


def echo_app(timeout_s: float) -> Starlette:
    async def echo(request: Request) -> Response:
        return Response(await read_body(request, LIMIT, timeout_s=timeout_s))

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])],
                     exception_handlers={BadRequest: bad_request, Exception: unexpected})


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


async def test_an_oversized_chunked_body_is_413() -> None:
    # No Content-Length to refuse up front: only counting what streams in catches it.
    with served(echo_app(30), settings()) as server:
        async with connect(server.port) as conn:
            await conn.send(chunked("/echo", [b"x" * 400] * 3))
            status, _, body = await conn.response()
    assert status == 413
    assert json.loads(body)["error"]["message"] == (
        f"the request body is over the {LIMIT}-byte limit")


async def test_a_chunked_body_within_the_limit_is_read_whole() -> None:
    with served(echo_app(30), settings()) as server:
        async with connect(server.port) as conn:
            await conn.send(chunked("/echo", [b"a" * 500, b"b" * 500]))
            status, _, body = await conn.response()
    assert (status, body) == (200, b"a" * 500 + b"b" * 500)


async def test_a_body_that_does_not_come_is_a_408_and_the_connection_closes(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    with served(echo_app(0.3), settings()) as server:
        async with connect(server.port) as conn:
            await conn.send(request("POST", "/echo", b"{", length=1000))  # and then nothing
            status, headers, body = await conn.response()
            assert await conn.closed_by_server()
        await server.idle()
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["error"] == {
        "message": "the request body did not arrive within 0.3 s",
        "type": "invalid_request_error", "param": None, "code": "request_timeout"}
    assert_at_most_one_short_line(caplog)


async def test_the_deadline_is_for_the_whole_body_not_each_piece() -> None:
    # A byte now and then would keep a per-read timeout waiting for ever.
    with served(echo_app(0.5), settings()) as server:
        async with connect(server.port) as conn:
            await conn.send(request("POST", "/echo", b"", length=1000))
            answer = asyncio.ensure_future(conn.response())
            while not answer.done():
                await conn.send(b"x")
                await asyncio.wait([answer], timeout=0.05)
    assert answer.result()[0] == 408


async def test_a_client_that_leaves_half_way_is_one_short_line_and_no_traceback(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    with served(echo_app(30), settings()) as server:
        for _ in range(3):  # as often as anyone likes
            caplog.clear()
            async with connect(server.port) as conn:
                await conn.send(request("POST", "/echo", b"x", length=1000))
                await until(lambda: server.busy)  # the app is reading the body
            await server.idle()
            assert_at_most_one_short_line(caplog)
            [line] = [r for r in caplog.records if r.name == "shared.http"]
            assert line.levelno == logging.INFO
            assert line.getMessage() == "POST /echo: the client left before its body arrived"


def test_lambda_hands_over_the_whole_body_at_once_so_the_deadline_never_counts() -> None:
    # Mangum gives the body in the first message; even a deadline far too short for any network
    # is met. Run as Lambda runs it: its own event loop, no server.
    body = b'{"text":"hello"}' * 10
    answers: list[dict[str, Any]] = []

    def invoke() -> None:  # a thread with a loop of its own, closed after, as a container's
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            # Built here: Mangum makes an event loop for the thread it is built in if that
            # has none, which in the test's own thread would be left unclosed.
            handler = Mangum(echo_app(0.000_001), lifespan="off")
            answers.append(handler(http_event("POST", "/echo", body), _Context()))
        finally:
            loop.close()

    thread = threading.Thread(target=invoke)
    thread.start()
    thread.join()
    [answer] = answers
    assert answer["statusCode"] == 200
    assert answer["body"] == body.decode()


class _Context:
    """The part of Lambda's context object Mangum reads (nothing, but it must exist)."""

    function_name = "echo"
    aws_request_id = "test"
