"""A thin proxy to the OpenAI-compatible engine on this host (llama.cpp's ``llama-server``).

Streaming passes the engine's server-sent events through as they arrive, without decoding
them: the gateway's cost per event is one bytes split and a count of its text deltas (the
budget's fallback when no usage comes). Only the final usage chunk is parsed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from model_server.engines.base import (
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Usage,
)
from shared.keepalive_http import KeepAliveHTTP, Response

CHAT_PATH = "/v1/chat/completions"


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
    """POSTs OpenAI-style bodies to the engine at ``host:port`` (loopback)."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 2.0,
                 read_timeout_s: float = 120.0) -> None:
        self._http = KeepAliveHTTP(host, port, connect_timeout_s=connect_timeout_s,
                                   user_agent="charla-gateway")
        self._read_timeout = read_timeout_s

    async def close(self) -> None:
        await self._http.aclose()

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(2.0):
                response = await self._http.request("GET", "/health")
                await response.read()
                response.release()
        except (ConnectionError, OSError, TimeoutError):
            return False
        return response.status == 200

    async def _post(self, body: dict[str, Any]) -> Response:
        try:
            return await self._http.request("POST", CHAT_PATH, json.dumps(body).encode())
        except (ConnectionError, OSError, TimeoutError) as exc:  # TimeoutError: connecting
            raise EngineUnavailable("the engine is not reachable") from exc

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        response: Response | None = None
        try:
            async with asyncio.timeout(self._read_timeout):
                response = await self._post(body)
                raw = await response.read()
        except TimeoutError as exc:
            raise EngineTimeout("the engine did not answer in time") from exc
        except (ConnectionError, OSError) as exc:
            raise EngineUnavailable("the engine went away mid-answer") from exc
        finally:
            if response is not None:
                response.release()
        if response.status != 200:
            raise _engine_error(response.status, raw.decode(errors="replace"))
        result: dict[str, Any] = json.loads(raw)
        usage.update(result.get("usage"))
        result.pop("timings", None)
        return result

    async def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        try:
            async with asyncio.timeout(self._read_timeout):
                response = await self._post(body)
        except TimeoutError as exc:
            raise EngineTimeout("the engine did not answer in time") from exc
        finished = False
        try:
            if response.status != 200:
                raise _engine_error(response.status,
                                    (await response.read()).decode(errors="replace"))
            buffer = b""
            # The read timeout is between events, not for the whole answer.
            async for chunk in response.chunks(idle_timeout_s=self._read_timeout):
                buffer += chunk
                if b"\n\n" not in buffer:
                    continue
                *events, buffer = buffer.split(b"\n\n")
                out = []
                for event in events:
                    usage.count_deltas(event)
                    usage_only = b'"usage":{' in event and self._is_usage_only(event, usage)
                    if usage_only and not forward_usage:
                        continue
                    out.append(event + b"\n\n")
                if out:
                    yield b"".join(out)
            if buffer.strip():
                usage.count_deltas(buffer)
                yield buffer + b"\n\n"
            finished = True
        except TimeoutError as exc:
            raise EngineTimeout("the engine stopped answering") from exc
        except (ConnectionError, OSError) as exc:
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
