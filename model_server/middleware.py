"""The gateway's own ASGI middleware: answers counted by route and status.

It is the outermost layer (:func:`model_server.app.create_app` puts it before the token
check), so refused tokens and unexpected errors are counted too. It hands the raw ``send`` to
:class:`~model_server.event_stream.EventStream`, so streamed events skip the layers inside it.
"""

from __future__ import annotations

from typing import Any

from model_server.event_stream import DIRECT_SEND
from model_server.metrics import Metrics


class CountRequests:
    """ASGI middleware: count answers by route and status without touching bodies."""

    def __init__(self, app: Any, metrics: Metrics, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths  # label by known route only: scanners must not grow the registry

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        scope[DIRECT_SEND] = send  # streamed events skip the wrappers below (EventStream)

        async def record(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.answered(scope["path"] if scope["path"] in self.paths else "other",
                                  status)
