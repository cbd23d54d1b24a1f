"""The functions' client of the model server, against a scripted server (plain and TLS).

The real gateway is behind the API and bot tests; here the answers it rarely gives on demand:
a 429 with Retry-After, a 500, a body that is not JSON, a certificate to check, a stream the
caller stops reading.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jwt
import pytest

from functions.model_client import ModelClient, ModelServerError
from tests.conftest import make_settings
from tests.fakes.http_peer import Peer, certificate_authority, ok, read_request, serving


def client_for(url: str, keys: tuple[str, str], **env: str) -> ModelClient:
    return ModelClient(make_settings(MODEL_SERVER_URL=url, CHARLA_SERVICE_PRIVATE_KEY=keys[0],
                                     **env))


def answer(status: int, body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


async def test_a_whole_answer_goes_under_the_url_path_with_a_token_for_the_user(
        service_keys: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Straight to the model server: a proxy set for the platforms' APIs never sees a prompt.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    async def script(reader, writer, _n):  # type: ignore[no-untyped-def]
        while True:
            peer.requests.append(await read_request(reader))
            writer.write(ok(b'{"choices": [{"message": {"content": "hola"}}]}'))

    async with serving() as start:
        peer: Peer = await start(script)
        model = client_for(f"http://127.0.0.1:{peer.port}/gw/", service_keys)
        for _ in range(2):
            result = await model.complete({"messages": []}, sub="api:alice")
            assert result["choices"][0]["message"]["content"] == "hola"
        await model.close()
    assert peer.connections == 1  # kept alive
    head, body = peer.requests[0].split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /gw/v1/chat/completions HTTP/1.1"
    assert json.loads(body) == {"messages": []}
    token = next(v for k, v in (line.split(": ", 1) for line in lines[1:])
                 if k == "Authorization").removeprefix("Bearer ")
    claims = jwt.decode(token, service_keys[1], algorithms=["EdDSA"],
                        audience="charla-model-server")
    assert claims["sub"] == "api:alice"


REFUSALS = [  # (what the server sends, then what the caller gets)
    (answer(429, b'{"error": {"message": "slow down", "code": "rate_limited"}}',
            b"Retry-After: 7"), 429, "slow down", "7", "rate_limited"),
    (answer(500, b"oops"), 502, "the model server answered 500", None, None),
    (answer(503, b'{"error": {"message": "loading"}}', b"Retry-After: 5"), 503, "loading",
     "5", None),
]


# A whole answer is parsed here (a stream's 200 events pass through; the API reads them).
NOT_JSON = (answer(200, b"<html>not json</html>"), 502, "not JSON", None, "bad_gateway")


@pytest.mark.parametrize(("stream", "reply", "status", "message", "retry_after", "code"), [
    *((stream, *refusal) for stream in (False, True) for refusal in REFUSALS),
    (False, *NOT_JSON),
])
async def test_refusals_keep_the_status_message_and_retry_after(
        service_keys: tuple[str, str], stream: bool, reply: bytes, status: int, message: str,
        retry_after: str | None, code: str | None) -> None:
    async def script(reader, writer, _n):  # type: ignore[no-untyped-def]
        await read_request(reader)
        writer.write(reply)

    async with serving() as start:
        peer = await start(script)
        model = client_for(f"http://127.0.0.1:{peer.port}", service_keys)
        with pytest.raises(ModelServerError) as caught:
            if stream:
                await anext(model.stream({"messages": []}, sub="api:a"))
            else:
                await model.complete({"messages": []}, sub="api:a")
        await model.close()
    err = caught.value
    assert (err.status, err.retry_after, err.code) == (status, retry_after, code)
    assert message in err.message


async def test_a_stream_passes_through_and_stopping_early_hangs_up(
        service_keys: tuple[str, str]) -> None:
    stopped = asyncio.Event()

    async def script(reader, writer, _n):  # type: ignore[no-untyped-def]
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for i in range(1000):
                event = b'data: {"n": %d}\n\n' % i
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    async with serving() as start:
        peer = await start(script)
        model = client_for(f"http://127.0.0.1:{peer.port}", service_keys)
        events = model.stream({"messages": [], "stream": True}, sub="api:a")
        seen = b""
        async for chunk in events:
            seen += chunk
            if seen.count(b"\n\n") >= 3:
                break
        await events.aclose()
        assert seen.startswith(b'data: {"n": 0}\n\ndata: {"n": 1}\n\n')
        async with asyncio.timeout(5):
            await stopped.wait()  # the server's writes failed: the connection was dropped
        await model.close()


async def test_a_server_that_stops_sending_is_504_after_the_wait(
        service_keys: tuple[str, str]) -> None:
    async def script(reader, writer, _n):  # type: ignore[no-untyped-def]
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"f\r\ndata: {\"a\":1}\n\n\r\n")
        await asyncio.sleep(30)

    async with serving() as start:
        peer = await start(script)
        model = client_for(f"http://127.0.0.1:{peer.port}", service_keys,
                           CHARLA_MODEL_FIRST_TOKEN_TIMEOUT="0.5")
        events = model.stream({"messages": []}, sub="api:a")
        assert await anext(events) == b'data: {"a":1}\n\n'
        with pytest.raises(ModelServerError) as caught:
            await anext(events)
        assert caught.value.status == 504
        await model.close()


async def test_https_checks_the_certificate_against_ssl_cert_file(
        service_keys: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    authority = certificate_authority(tmp_path)

    async def script(reader, writer, _n):  # type: ignore[no-untyped-def]
        while True:
            await read_request(reader)
            writer.write(ok(b'{"status": "ok"}'))

    async with serving(authority.server) as start:
        peer = await start(script)
        url = f"https://127.0.0.1:{peer.port}"
        untrusting = client_for(url, service_keys)
        with pytest.raises(ModelServerError) as caught:
            await untrusting.complete({"messages": []}, sub="api:a")
        assert caught.value.status == 503  # a certificate we cannot check: unreachable
        assert not await untrusting.healthy()
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
        trusting = client_for(url, service_keys)
        assert await trusting.healthy()
        assert await trusting.get("/v1/models", sub="api:a") == {"status": "ok"}
        await trusting.close()
        await untrusting.close()


def test_a_url_that_is_not_http_is_refused(service_keys: tuple[str, str]) -> None:
    for url in ("ftp://model:21", "127.0.0.1:8001", "http://"):
        with pytest.raises(ValueError, match="http:// or https://"):
            client_for(url, service_keys)
