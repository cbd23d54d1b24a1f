"""A thin proxy to an OpenAI-compatible engine on this host (llama.cpp's ``llama-server``).

Streaming passes the engine's server-sent events through as they arrive, without decoding
them: the gateway's cost per token is one bytes split, which keeps its overhead under the
engine's own timing noise (docs/benchmarks.md). Only the final usage chunk is parsed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

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
    """POSTs OpenAI-style bodies to ``{base_url}/v1/chat/completions``."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 120.0,
        api_key: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def ready(self) -> bool:
        try:
            response = await self._client.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        try:
            response = await self._client.post("/v1/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise EngineTimeout("the engine did not answer in time") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable("the engine is not reachable") from exc
        if response.status_code != 200:
            raise _engine_error(response.status_code, response.text)
        result: dict[str, Any] = response.json()
        usage.update(result.get("usage"))
        result.pop("timings", None)
        return result

    async def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncIterator[bytes]:
        request = self._client.build_request("POST", "/v1/chat/completions", json=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise EngineTimeout("the engine did not answer in time") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable("the engine is not reachable") from exc
        try:
            if response.status_code != 200:
                raise _engine_error(response.status_code, (await response.aread()).decode())
            buffer = b""
            async for chunk in response.aiter_raw():
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
        except httpx.TimeoutException as exc:
            raise EngineTimeout("the engine stopped answering") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable("the engine went away mid-answer") from exc
        finally:
            await response.aclose()

    @staticmethod
    def _is_usage_only(event: bytes, usage: Usage) -> bool:
        """Record usage from a chunk; True when it is the usage-only final chunk."""
        try:
            data = json.loads(event.removeprefix(b"data: "))
        except ValueError:
            return False
        usage.update(data.get("usage"))
        return not data.get("choices")
