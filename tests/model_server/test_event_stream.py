"""model_server.event_stream.EventStream over real HTTP (uvicorn on loopback): what the
wrappers see, what the client gets, and a client that hangs up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from model_server.event_stream import DIRECT_SEND, EventStream
from tests.conftest import ServerThread


class Seen:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.closed = threading.Event()
        self.produced = 0


class Outer:
    """An app's outermost middleware: leaves its send for EventStream, records what passes."""

    def __init__(self, app: Any, seen: Seen) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[DIRECT_SEND] = send

        async def record(message: Any) -> None:
            self.seen.messages.append(f"{message['type']}:{message.get('status', '')}")
            await send(message)

        await self.app(scope, receive, record)


def app_for(seen: Seen) -> Starlette:
    async def events(n: int, pause: float) -> AsyncIterator[bytes]:
        try:
            for i in range(n):
                seen.produced += 1
                yield b"data: %d\n\n" % i
                await asyncio.sleep(pause)
        finally:
            seen.closed.set()

    async def stream(request: Request) -> EventStream:
        n = int(request.query_params["n"])
        return EventStream(events(n, float(request.query_params.get("pause", "0"))))

    return Starlette(routes=[Route("/stream", stream)],
                     middleware=[Middleware(Outer, seen=seen)])


@pytest.fixture
def served() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = ServerThread(app_for(seen)).start()
    try:
        yield server.url, seen
    finally:
        server.stop()


def test_events_arrive_in_order_and_only_the_start_and_end_pass_the_wrappers(
    served: tuple[str, Seen],
) -> None:
    url, seen = served
    response = httpx.get(url + "/stream", params={"n": 50})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == "".join(f"data: {i}\n\n" for i in range(50))
    # The middleware saw the status (as it would count it) and the end, not the 50 events.
    assert seen.messages == ["http.response.start:200", "http.response.body:"]


def test_a_client_that_hangs_up_stops_the_events(served: tuple[str, Seen]) -> None:
    url, seen = served
    with httpx.stream("GET", url + "/stream", params={"n": 1000, "pause": 0.01}) as response:
        lines = response.iter_lines()
        assert next(lines) == "data: 0"
    # 1,000 events take 10 s or more: the generator was closed by the hang-up, not by its end
    # (the wait only bounds a hang).
    assert seen.closed.wait(60)
    assert seen.produced < 1000
