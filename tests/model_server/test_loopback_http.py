"""The gateway's HTTP/1.1 client for its engine, against a scripted server on loopback.

The real engine (llama-server) is exercised by the gateway tests; this scripted peer makes
the cases llama-server rarely shows on demand: a closed idle connection, a body cut off,
garbage instead of HTTP, a slow reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from model_server.engines.loopback_http import LoopbackHTTP

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@dataclass
class Peer:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[Peer]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Peer:
        peer = Peer(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer.connections += 1
            try:
                await script(reader, writer, peer.connections)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        peer.port = server.sockets[0].getsockname()[1]
        return peer

    yield start
    for server in servers:
        server.close()


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_keeps_the_connection_alive_between_requests(serve) -> None:
    async def script(reader, writer, _n):
        while True:
            request = await read_request(reader)
            writer.write(ok(b"echo:" + request.split(b"\r\n\r\n", 1)[1]))

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    for i in range(3):
        response = await client.request("POST", "/x", b'{"n":%d}' % i)
        assert response.status == 200
        assert await response.read() == b'echo:{"n":%d}' % i
        response.release()
    assert peer.connections == 1
    client.close()


async def test_chunked_body_arrives_piece_by_piece(serve) -> None:
    gate = asyncio.Event()

    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata: \r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"3\r\none\r\n0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("POST", "/stream", b"{}")
    pieces = response.chunks()
    assert await anext(pieces) == b"data: "  # before the rest is even sent
    gate.set()
    assert await anext(pieces) == b"one"
    assert await anext(pieces, None) is None
    response.release()
    client.close()


async def test_an_idle_connection_closed_by_the_engine_is_replaced(serve) -> None:
    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(ok(b"first"))
        await writer.drain()
        # and close the kept-alive connection, as an engine's idle timeout does

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("GET", "/a")
    assert await response.read() == b"first"
    response.release()
    await asyncio.sleep(0.1)
    response = await client.request("GET", "/b")
    assert await response.read() == b"first"
    response.release()
    assert peer.connections == 2
    client.close()


async def test_a_body_cut_off_raises_connection_error(serve) -> None:
    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("GET", "/")
    with pytest.raises(ConnectionError):
        await response.read()
    response.release()
    client.close()


async def test_garbage_instead_of_http_raises_connection_error(serve) -> None:
    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    with pytest.raises(ConnectionError, match="malformed"):
        await client.request("GET", "/")
    client.close()


async def test_nothing_listening_raises_connection_error() -> None:
    client = LoopbackHTTP("127.0.0.1", 1)
    with pytest.raises(ConnectionError):
        await client.request("GET", "/")


async def test_closing_a_response_mid_body_drops_the_connection(serve) -> None:
    closed = asyncio.Event()

    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # returns b"" when the client hangs up
        closed.set()

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("POST", "/stream", b"{}")
    assert await anext(response.chunks()) == b"hello"
    response.close()
    await asyncio.wait_for(closed.wait(), 5)  # the engine sees the hang-up and can stop
    client.close()


async def test_a_slow_reader_pauses_the_socket_and_still_gets_everything(serve) -> None:
    body = bytes(range(256)) * 16 * 1024  # 4 MiB, more than the high-water mark

    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(ok(body))
        await writer.drain()

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("GET", "/big")
    await asyncio.sleep(0.3)  # let the engine send while nobody reads
    assert response._conn._buffered <= 2 * (1 << 20)  # reading paused near the mark
    got = bytearray()
    async for piece in response.chunks():
        got += piece
    assert bytes(got) == body
    response.release()
    client.close()


def chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


async def test_a_body_that_stalls_raises_timeout_after_the_idle_limit(serve) -> None:
    async def script(reader, writer, _n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"one"))
        await writer.drain()
        await asyncio.sleep(5)  # an engine that hangs mid-answer

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("POST", "/stream", b"{}")
    pieces = response.chunks(idle_timeout_s=0.3)
    assert await anext(pieces) == b"one"
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await anext(pieces)
    assert 0.25 < asyncio.get_running_loop().time() - started < 2
    response.close()
    client.close()


async def test_the_idle_limit_is_between_pieces_not_for_the_whole_body(serve) -> None:
    async def script(reader, writer, _n):
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(8):  # 0.8 s in all, never more than 0.1 s without a piece
                await asyncio.sleep(0.1)
                writer.write(chunk(b"%d" % i))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    peer = await serve(script)
    client = LoopbackHTTP("127.0.0.1", peer.port)
    response = await client.request("POST", "/stream", b"{}")
    assert [p async for p in response.chunks(idle_timeout_s=0.4)] == [b"%d" % i for i in range(8)]
    response.release()
    # The connection goes back to the pool with its timer stopped: waiting past the limit
    # before the next request on it fails nothing.
    await asyncio.sleep(0.5)
    response = await client.request("POST", "/stream", b"{}")
    assert len([p async for p in response.chunks(idle_timeout_s=0.4)]) == 8
    response.release()
    assert peer.connections == 1
    client.close()
