"""An app served as production serves it (uvicorn with shared/serving.py's limits), a raw
HTTP/1.1 client for what httpx will not do (half a body, a hang-up, headers a byte at a time),
and the log lines a request left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import uvicorn

from shared.serving import server_options
from shared.settings import Settings
from tests.conftest import free_port


class Served:
    """``app`` on a loopback port, in a thread, with the limits ``settings`` give."""

    def __init__(self, app: Any, settings: Settings, *, lifespan: str = "off") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None: the test's own logging (caplog) sees uvicorn's lines too.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan=lifespan,
                                log_config=None, access_log=False,
                                timeout_graceful_shutdown=1, **server_options(settings))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def connections(self) -> int:
        return len(self.server.server_state.connections)

    @property
    def busy(self) -> bool:
        """Whether a request is still being handled (its task not finished)."""
        return bool(self.server.server_state.tasks)

    async def idle(self, *, connections: int = 0) -> None:
        """Wait until every request's work is over and at most ``connections`` are open."""
        await until(lambda: not self.busy and self.connections <= connections)


@contextlib.contextmanager
def served(app: Any, settings: Settings, *, lifespan: str = "off") -> Iterator[Served]:
    server = Served(app, settings, lifespan=lifespan).start()
    try:
        yield server
    finally:
        server.stop()


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait for ``check`` to hold: a condition, polled; the timeout only ends a failing test."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.01)


class Raw:
    """One HTTP/1.1 connection, written and read byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body (by Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines if line)
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 30)
        return int(status_line.split()[1]), headers, body

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (EOF, or a reset) with nothing more sent."""
        try:
            return await asyncio.wait_for(self.reader.read(1), 30) == b""
        except ConnectionResetError:
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Raw]:
    """A raw connection to the server on ``port``, closed at the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Raw(reader, writer)
    try:
        yield conn
    finally:
        await conn.close()


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            *, length: int | None = None) -> bytes:
    """A request's bytes; ``length`` declares another Content-Length than the body's."""
    sent = {"host": "127.0.0.1", "content-length": str(len(body) if length is None else length)}
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    return head.encode("latin-1") + b"\r\n" + body


def chunked(path: str, pieces: list[bytes], headers: dict[str, str] | None = None) -> bytes:
    """A request whose body is sent chunked: no Content-Length, so no size known up front."""
    sent = {"host": "127.0.0.1", "transfer-encoding": "chunked", **(headers or {})}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def capture_all_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``caplog`` see every record once, uvicorn's included: a test server started earlier
    in the session may have configured uvicorn's loggers not to propagate, and left handlers
    on them (pytest's own capture handlers among them, which would count a record twice)."""
    for name in ("uvicorn", "uvicorn.error"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What requests logged: the records of the app and of uvicorn's HTTP side (not its start
    and stop lines, nor asyncio's debug ones)."""
    ignored = ("Started server", "Waiting for application", "Application startup",
               "Uvicorn running", "Shutting down", "Finished server", "Waiting for connections",
               "Waiting for background", "Application shutdown")
    # uvicorn.access: both apps run with access_log=False; here caplog's handler on the root
    # logger switches it on (uvicorn logs access lines whenever the logger has a handler).
    return [r for r in caplog.records if r.name not in ("asyncio", "uvicorn.access")
            and not r.getMessage().startswith(ignored)]


def assert_at_most_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    """The log of a hostile request: one short line at most, at INFO or below, no traceback."""
    lines = request_lines(caplog)
    assert len(lines) <= 1, [r.getMessage() for r in lines]
    for record in lines:
        assert record.levelno <= logging.INFO, record.getMessage()
        assert record.exc_info is None and record.exc_text is None
        assert len(record.getMessage()) < 120
