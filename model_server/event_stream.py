"""The gateway's streamed answers: events that skip the middleware ``send`` wrappers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Where an app's outermost own middleware leaves the ``send`` it was given (see EventStream).
DIRECT_SEND = "charla.direct_send"


class EventStream(Response):
    """A ``text/event-stream`` answer whose events skip the middleware ``send`` wrappers.

    Starlette wraps ``send`` once per layer (exception handlers at app and route, each
    middleware) to see when a response starts. Every wrapper is a coroutine call per message,
    and a stream sends one message per token, on the model host next to an engine that wants
    every cycle. So the start goes down the whole chain (the wrappers see the status, as for
    any response) and the events go to the ``send`` that the app's outermost own middleware
    left in the scope under :data:`DIRECT_SEND`, when it did.

    As Starlette's ``StreamingResponse``, it stops iterating when the client disconnects.
    """

    def __init__(self, events: AsyncIterator[bytes],
                 headers: Mapping[str, str] | None = None) -> None:
        # Not Response.__init__: there is no body to render (as in StreamingResponse).
        self.events = events
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                             for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.raw_headers})
        direct: Send = scope.get(DIRECT_SEND, send)
        streaming = asyncio.current_task()
        assert streaming is not None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            streaming.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            async for event in self.events:
                await direct({"type": "http.response.body", "body": event, "more_body": True})
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # cancelled from outside, not by a disconnect
            streaming.uncancel()
            return
        finally:
            watcher.cancel()
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
