"""A small keep-alive HTTP/1.1 client for the hops inside Charla: gateway to engine, and
functions to model server.

Why not aiohttp or httpx: on the model host the engine's threads hold every core while they
compute, and whatever Python runs per request or per streamed token runs next to them.
Measured on 2 cores (docs/benchmarks.md), a pass-through proxy added 0.74 ms at the median
with aiohttp's client and 0.37 ms with this one, whose request path is one ``write`` and
httptools' C parser; relaying a streamed answer, the API spent about 40% less CPU per token
with it than with httpx. It speaks just what the hops need: one request at a time per
connection, bodies with ``Content-Length`` or chunked, keep-alive, TLS where asked, and
reading a body as it arrives (server-sent events). Timeouts are the caller's
(``asyncio.timeout``), except the gap between pieces of a body read as it arrives
(:meth:`Response.chunks`), which one timer per response watches; connection failures raise
:class:`ConnectionError`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import cast

import httptools

# Stop reading from the socket while this much of a body waits for a slow consumer.
_HIGH_WATER = 1 << 20
_IDLE_CONNECTIONS = 64


class _Connection(asyncio.Protocol):
    """One TCP connection and the response being read on it."""

    def __init__(self, on_lost: Callable[[_Connection], None]) -> None:
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        # Kept: on Python 3.11 every asyncio.get_running_loop() is a getpid() system call.
        self._loop = asyncio.get_running_loop()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_s = 0.0
        self._last_data = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self.keep_alive = False
        self.received = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(ConnectionError("the server sent a malformed HTTP response"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_lost(self)
        self.stop_idle_timer()
        if not self.complete:
            self._fail(ConnectionError("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.stop_idle_timer()
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # used by Response
    def send(self, request: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(request)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def watch_idle(self, seconds: float) -> None:
        """Fail the response with :class:`TimeoutError` once nothing arrives for ``seconds``.

        One timer per response, moved on only when it fires: a per-piece ``asyncio.timeout``
        costs a timer, a task lookup and two loop lookups for every token streamed."""
        self.stop_idle_timer()
        self._idle_s = seconds
        self._last_data = self._loop.time()
        self._idle_timer = self._loop.call_at(self._last_data + seconds, self._idle_check)

    def stop_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_check(self) -> None:
        due = self._last_data + self._idle_s
        if self._loop.time() < due:
            self._idle_timer = self._loop.call_at(due, self._idle_check)
            return
        self._idle_timer = None
        self._fail(TimeoutError(f"nothing arrived for {self._idle_s:g} s"))

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        await self._waiter
        if self._error is not None and not self._chunks and not self.complete:
            raise self._error

    async def wait_headers(self) -> None:
        while not self.status:
            await self._wait()

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or None once it has all arrived."""
        while not self._chunks:
            if self.complete:
                return None
            await self._wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered <= _HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
        return chunk

    def abort(self) -> None:
        self.closed = True
        self.stop_idle_timer()
        if self.transport is not None:
            self.transport.abort()


class Response:
    """A response whose status has arrived; read its body whole or piece by piece.

    Call :meth:`release` when done (the connection goes back to the pool if the body was read
    to its end) or :meth:`close` to drop the connection, which makes the server stop working
    on the request.
    """

    def __init__(self, client: KeepAliveHTTP, conn: _Connection) -> None:
        self._client = client
        self._conn = conn
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers  # names in lower case
        self._done = False

    async def read(self) -> bytes:
        parts = []
        while (chunk := await self._conn.next_chunk()) is not None:
            parts.append(chunk)
        return b"".join(parts)

    async def chunks(self, idle_timeout_s: float | None = None) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives; :class:`TimeoutError` when nothing arrives
        for ``idle_timeout_s``."""
        conn = self._conn
        if idle_timeout_s is not None and not conn.complete:
            conn.watch_idle(idle_timeout_s)
        try:
            while (chunk := await conn.next_chunk()) is not None:
                yield chunk
        finally:
            conn.stop_idle_timer()

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed:
            self._client._give_back(conn)
        else:
            conn.abort()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._conn.abort()


class KeepAliveHTTP:
    """Requests to one ``host:port``, over a pool of kept-alive connections (over TLS when
    given a ``tls`` context, checking the certificate against ``host``)."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 2.0,
                 tls: ssl.SSLContext | None = None, user_agent: str = "charla") -> None:
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout_s
        self._tls = tls
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()  # idle or carrying a response
        self._head = f"Host: {host}:{port}\r\nUser-Agent: {user_agent}\r\n".encode()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            if self._tls is None:
                _, conn = await loop.create_connection(self._new, self._host, self._port)
            else:
                _, conn = await loop.create_connection(self._new, self._host, self._port,
                                                       ssl=self._tls,
                                                       server_hostname=self._host)
        self._open.add(conn)
        return conn

    def _new(self) -> _Connection:
        return _Connection(self._open.discard)

    def _give_back(self, conn: _Connection) -> None:
        if len(self._idle) < _IDLE_CONNECTIONS:
            self._idle.append(conn)
        else:
            conn.abort()

    async def request(self, method: str, path: str, body: bytes | None = None,
                      content_type: str = "application/json",
                      headers: Mapping[str, str] | None = None) -> Response:
        """Send a request and wait for its status line and headers."""
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._head
        if headers:
            lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
                raise ValueError("a header name or value holds a line break")
            head += lines.encode()
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
        message = head + b"\r\n" + (body or b"")
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(conn, message)
            except ConnectionError:
                # The server closed an idle connection as we reused it. It read nothing of
                # ours (no byte came back), so the request is sent again on a new one.
                if conn.received:
                    raise
        return await self._exchange(await self._connect(), message)

    async def _exchange(self, conn: _Connection, message: bytes) -> Response:
        try:
            conn.send(message)
            await conn.wait_headers()
        except BaseException:
            conn.abort()
            raise
        return Response(self, conn)

    def close(self) -> None:
        """Drop every connection, idle or not (a response still being read fails with
        :class:`ConnectionError`); the sockets close on the loop's next turn."""
        self._idle = []
        for conn in list(self._open):
            conn.abort()

    async def aclose(self) -> None:
        """Drop every connection and let the loop close their sockets: needed when the loop
        itself is closed next (a Lambda container ending), or the sockets would leak."""
        self.close()
        await asyncio.sleep(0)
