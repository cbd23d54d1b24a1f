"""The small HTTP/1.1 client of Charla's inner hops, against a scripted server on loopback.

The real servers (llama-server, the gateway) are exercised by the gateway and API tests; the
scripted peer makes the cases they rarely show on demand: a closed idle connection, a body cut
off, garbage instead of HTTP, a slow reader.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shared.keepalive_http import KeepAliveHTTP
from tests.fakes.http_peer import Peer, Script, certificate_authority, ok, read_request, serving


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[Peer]]]:
    async with serving() as start:
        yield start


async def test_keeps_the_connection_alive_between_requests(serve) -> None:
    async def script(reader, writer, _n):
        while True:
            request = await read_request(reader)
            writer.write(ok(b"echo:" + request.split(b"\r\n\r\n", 1)[1]))

    peer = await serve(script)
    client = KeepAliveHTTP("127.0.0.1", peer.port)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
    with pytest.raises(ConnectionError, match="malformed"):
        await client.request("GET", "/")
    client.close()


async def test_nothing_listening_raises_connection_error() -> None:
    client = KeepAliveHTTP("127.0.0.1", 1)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
    response = await client.request("GET", "/big")
    # Nobody reads while the engine sends: the client stops reading the socket near the mark
    # (a client that never paused would take all 4 MiB, and the peer's hang-up stops it).
    transport = response._conn.transport
    assert transport is not None
    async with asyncio.timeout(30):
        while True:
            if not transport.is_reading():
                break
            await asyncio.sleep(0.01)
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
    client = KeepAliveHTTP("127.0.0.1", peer.port)
    response = await client.request("POST", "/stream", b"{}")
    pieces = response.chunks(idle_timeout_s=0.3)
    started = asyncio.get_running_loop().time()
    assert await anext(pieces) == b"one"
    # The idle limit, not the peer's hang-up 5 s later (a ConnectionError), ends the wait.
    with pytest.raises(TimeoutError, match=r"nothing arrived for 0\.3 s"):
        await anext(pieces)
    assert asyncio.get_running_loop().time() - started >= 0.3
    response.close()
    client.close()


async def test_the_idle_limit_is_between_pieces_not_for_the_whole_body(serve) -> None:
    async def script(reader, writer, _n):
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(12):  # 1.2 s in all, never more than 0.1 s without a piece
                await asyncio.sleep(0.1)
                writer.write(chunk(b"%d" % i))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    peer = await serve(script)
    client = KeepAliveHTTP("127.0.0.1", peer.port)
    response = await client.request("POST", "/stream", b"{}")
    # An idle limit ten times the gap between pieces: a busy machine's pauses stay under it.
    assert [p async for p in response.chunks(idle_timeout_s=1.0)] == [
        b"%d" % i for i in range(12)]
    response.release()
    # The connection goes back to the pool with its timer stopped: waiting past the limit
    # before the next request on it fails nothing.
    await asyncio.sleep(1.1)
    response = await client.request("POST", "/stream", b"{}")
    assert len([p async for p in response.chunks(idle_timeout_s=1.0)]) == 12
    response.release()
    assert peer.connections == 1
    client.close()


async def test_headers_go_out_with_the_request_and_come_back_in_lower_case(serve) -> None:
    async def script(reader, writer, _n):
        peer.requests.append(await read_request(reader))
        writer.write(ok(b"{}", b"Retry-After: 7", b"X-Charla-Thing: a b"))

    peer = await serve(script)
    client = KeepAliveHTTP("127.0.0.1", peer.port, user_agent="charla-test")
    response = await client.request("GET", "/x", headers={"Authorization": "Bearer t0k"})
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-charla-thing"] == "a b"
    await response.read()
    response.release()
    head = peer.requests[0].split(b"\r\n")
    assert b"Authorization: Bearer t0k" in head and b"User-Agent: charla-test" in head
    assert head[0] == b"GET /x HTTP/1.1"


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(serve) -> None:
    async def script(reader, writer, _n):
        peer.requests.append(await read_request(reader))

    peer = await serve(script)
    client = KeepAliveHTTP("127.0.0.1", peer.port)
    for bad in ({"X-A": "b\r\nX-Injected: 1"}, {"X-A\nB": "c"}):
        with pytest.raises(ValueError, match="line break"):
            await client.request("GET", "/x", headers=bad)
    assert peer.connections == 0


async def test_over_tls_it_checks_the_certificate_and_keeps_the_connection(tmp_path: Path) -> None:
    authority = certificate_authority(tmp_path)

    async def script(reader, writer, _n):
        while True:
            peer.requests.append(await read_request(reader))
            writer.write(ok(b"secret answer"))

    async with serving(authority.server) as start:
        peer = await start(script)
        trusting = ssl.create_default_context(cafile=str(authority.ca_file))
        client = KeepAliveHTTP("127.0.0.1", peer.port, tls=trusting)
        for _ in range(2):
            response = await client.request("POST", "/x", b"{}")
            assert await response.read() == b"secret answer"
            response.release()
        assert peer.connections == 1 and len(peer.requests) == 2
        client.close()
        # Without the test CA among the trusted ones the handshake fails, nothing is sent.
        untrusting = KeepAliveHTTP("127.0.0.1", peer.port, tls=ssl.create_default_context())
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusting.request("POST", "/x", b"{}")
        # A certificate for another name fails too.
        other = KeepAliveHTTP("localhost", peer.port, tls=trusting)
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await other.request("POST", "/x", b"{}")
        assert len(peer.requests) == 2


async def test_aclose_leaves_no_socket_for_the_garbage_collector(serve) -> None:
    # A Lambda container ends by closing its clients, then its loop: the idle connections'
    # sockets must be closed by then, not left to the garbage collector (a ResourceWarning).
    async def script(reader, writer, _n):
        while True:
            await read_request(reader)
            writer.write(ok(b"{}"))

    peer = await serve(script)
    client = KeepAliveHTTP("127.0.0.1", peer.port)
    # One response nobody reads or releases (a generator left to the collector), one idle.
    forgotten = await client.request("GET", "/x")
    response = await client.request("GET", "/x")
    await response.read()
    response.release()
    sockets = [c.transport.get_extra_info("socket") for c in client._open if c.transport]
    assert len(sockets) == 2 and all(sock.fileno() >= 0 for sock in sockets)
    await client.aclose()
    assert [sock.fileno() for sock in sockets] == [-1, -1]
    assert forgotten.status == 200 and not client._open
