"""How uvicorn serves both apps (functions, model server): explicit limits on slow clients.

uvicorn's HTTP/1.1 protocol (httptools) bounds neither the time nor the size of a request's
headers: a client that connects and sends nothing, or a header a byte at a time, holds its
connection for as long as it likes, and 20 MB of headers were read into memory in a test. With
the body's own deadline (:func:`shared.http.read_body`) every phase of a request is bounded:

- headers: whole within ``CHARLA_BODY_TIMEOUT`` seconds of the connection (or of the previous
  answer on it), else the connection is closed; at most :data:`MAX_HEADER_BYTES`, else 431;
- body: whole within ``CHARLA_BODY_TIMEOUT`` seconds more, else 408 (shared/http.py);
- an idle kept-alive connection: closed after :data:`KEEP_ALIVE_S` seconds;
- ``CHARLA_MAX_CONNECTIONS`` connections at once: a request on one more is answered by
  uvicorn's own 503 (``limit_concurrency``) and its connection closed.

So a slow client holds one of those connections for at most twice the deadline. Lambda does
not come here: API Gateway buffers the request and Mangum hands over the whole body at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shared.settings import Settings

# Request line and headers together. A bearer JWT is 1-2 KB; nginx allows 4 x 8 KB, h11 16 KB.
MAX_HEADER_BYTES = 32 * 1024
KEEP_ALIVE_S = 5  # uvicorn's default, said here: the model client reuses connections inside it


class _HeadersTooLarge(Exception):
    """Raised in a parser callback to stop reading a request whose headers are too large."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on request headers."""

    header_timeout_s = 10.0
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._oversized = False

    def _arm(self) -> None:
        """Start counting the time the next request's headers may take."""
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # as uvicorn's keep-alive timeout does: no answer, no log

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            self._oversized = True
            raise _HeadersTooLarge  # httptools stops; uvicorn calls send_400_response

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()  # from here on the body's deadline (read_body) counts
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # No whole request waiting in the pipeline: the next one's headers are awaited now.
        awaiting = not self.pipeline
        super().on_response_complete()
        if awaiting and not self.transport.is_closing():
            self._arm()

    def send_400_response(self, msg: str) -> None:
        if not self._oversized:
            super().send_400_response(msg)
            return
        body = f"request headers are over {self.max_header_bytes} bytes".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             b"content-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (len(body), body))
        self.transport.close()


def protocol(header_timeout_s: float,
             max_header_bytes: int = MAX_HEADER_BYTES) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's ``http`` option, with these limits."""

    class Configured(GuardedHttpProtocol):
        pass

    Configured.header_timeout_s = header_timeout_s
    Configured.max_header_bytes = max_header_bytes
    return Configured


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the limits above (``uvicorn.run(app, **server_options(s))``)."""
    return {
        "http": protocol(settings.body_timeout_s),
        # uvicorn refuses once its count, which includes the connection asking, reaches this.
        "limit_concurrency": settings.max_connections + 1,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
