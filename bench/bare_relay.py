"""The floor for a Python hop: an HTTP relay on asyncio (uvloop) and httptools, nothing else.

No framework, no token check, no limits, no metrics: it reads a request, sends it to the
upstream with the gateway's own engine client (shared/keepalive_http.py) and
passes the answer back as it arrives (chunked). ``bench.gateway_cpu`` runs it beside the
gateway on the same stand-in engine, so the gateway's CPU per token has a floor to compare to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import urlsplit

import httptools
import uvloop

from shared.keepalive_http import KeepAliveHTTP


class _Client(asyncio.Protocol):
    def __init__(self, upstream: KeepAliveHTTP) -> None:
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        body, self.body = b"".join(self.body), []
        asyncio.get_running_loop().create_task(self.relay(method, self.url.decode(), body))

    async def relay(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        response = await self.upstream.request(method, path, body or None)
        streamed = bool(body) and json.loads(body).get("stream") is True
        kind = "text/event-stream" if streamed else "application/json"
        self.transport.write(f"HTTP/1.1 {response.status} OK\r\nContent-Type: {kind}\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n".encode())
        async for chunk in response.chunks():
            self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.transport.write(b"0\r\n\r\n")
        response.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    args = parser.parse_args()
    up = urlsplit(args.upstream)
    assert up.hostname is not None and up.port is not None

    async def serve() -> None:
        upstream = KeepAliveHTTP(up.hostname or "", up.port or 0)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Client(upstream), "127.0.0.1", args.port)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())  # as uvicorn runs the gateway


if __name__ == "__main__":
    main()
