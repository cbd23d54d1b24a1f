"""A thin proxy to an OpenAI-compatible engine on this host (llama.cpp's ``llama-server``).

Streaming passes the engine's server-sent events through as they arrive, without decoding
them: the gateway's cost per event is one bytes split. Only the final usage chunk is parsed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from model_server.engines.base import (
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Usage,
)


def _engine_error(response_status: int, text: str) -> EngineError:
    try:
        detail = json.loads(text).get("error", {})
        message = detail.get("message") if isinstance(detail, dict) else str(detail)
    except (ValueError, AttributeError):
        message = None
    message = (message or "the engine refused the request")[:300]
    if response_status in (400, 422):
        code = "context_length_exceeded" if "context size" in message else None
        return EngineRejected(message, 400, code)
    if response_status == 503:
        return EngineUnavailable("the engine is loading or overloaded")
    return EngineError(f"the engine failed ({response_status})")


class OpenAIHTTPProxy:
    """POSTs OpenAI-style bodies to ``{base_url}/v1/chat/completions``.

    aiohttp rather than httpx for this hop: it writes a request's headers and body in one
    send, and llama-server answers a split request about 0.9 ms later (docs/benchmarks.md).
    Create it inside the event loop that will use it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 120.0,
        api_key: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._base = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                          sock_read=read_timeout_s),
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
        )

    async def close(self) -> None:
        await self._session.close()

    async def ready(self) -> bool:
        try:
            async with self._session.get(self._base + "/health",
                                         timeout=aiohttp.ClientTimeout(total=2.0)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        try:
            async with self._session.post(self._base + "/v1/chat/completions",
                                          json=body) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError as exc:
            raise EngineTimeout("the engine did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise EngineUnavailable("the engine is not reachable") from exc
        if status != 200:
            raise _engine_error(status, raw.decode(errors="replace"))
        result: dict[str, Any] = json.loads(raw)
        usage.update(result.get("usage"))
        result.pop("timings", None)
        return result

    async def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncIterator[bytes]:
        try:
            response = await self._session.post(self._base + "/v1/chat/completions", json=body)
        except TimeoutError as exc:
            raise EngineTimeout("the engine did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise EngineUnavailable("the engine is not reachable") from exc
        finished = False
        try:
            if response.status != 200:
                raise _engine_error(response.status,
                                    (await response.read()).decode(errors="replace"))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                if b"\n\n" not in buffer:
                    continue
                *events, buffer = buffer.split(b"\n\n")
                out = []
                for event in events:
                    usage_only = b'"usage":{' in event and self._is_usage_only(event, usage)
                    if usage_only and not forward_usage:
                        continue
                    out.append(event + b"\n\n")
                if out:
                    yield b"".join(out)
            if buffer.strip():
                yield buffer + b"\n\n"
            finished = True
        except TimeoutError as exc:
            raise EngineTimeout("the engine stopped answering") from exc
        except aiohttp.ClientError as exc:
            raise EngineUnavailable("the engine went away mid-answer") from exc
        finally:
            if finished:
                response.release()
            else:
                # The client left (or the engine failed) mid-answer: drop the connection,
                # which makes llama-server stop generating for it.
                response.close()

    @staticmethod
    def _is_usage_only(event: bytes, usage: Usage) -> bool:
        """Record usage from a chunk; True when it is the usage-only final chunk."""
        try:
            data = json.loads(event.removeprefix(b"data: "))
        except ValueError:
            return False
        usage.update(data.get("usage"))
        return not data.get("choices")
