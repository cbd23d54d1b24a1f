"""A thin proxy to an OpenAI-compatible engine: the ``llama-server`` on this host, or one at a
URL (vLLM, another llama-server, Ollama: :class:`OpenAIServerEngine`).

OpenAI's request passes as it is, ``response_format`` included (huggingface_hub's client, the
``upstream`` engine, rewrites a JSON schema into TGI's own shape, which these engines do not
read). Streaming passes the engine's server-sent events through as they arrive, without
decoding them: the gateway's cost per event is one bytes split and a count of its text deltas
(the budget's fallback when no usage comes). Only the final usage chunk is parsed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

from model_server.engines.base import (
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Usage,
)
from shared.errors import ConfigError
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
    """POSTs OpenAI-style bodies to the engine at ``host:port`` (loopback unless told: a
    ``prefix`` before ``/v1``, TLS, an API key, where else to ask whether it is up)."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 2.0,
                 read_timeout_s: float = 120.0, tls: ssl.SSLContext | None = None,
                 prefix: str = "", api_key: str | None = None,
                 health: tuple[str, ...] = ("/health",)) -> None:
        self._http = KeepAliveHTTP(host, port, connect_timeout_s=connect_timeout_s, tls=tls,
                                   user_agent="charla-gateway")
        self._read_timeout = read_timeout_s
        self._chat = prefix + CHAT_PATH
        self._health = tuple(prefix + path for path in health)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else None

    async def close(self) -> None:
        await self._http.aclose()

    async def ready(self) -> bool:
        for path in self._health:
            try:
                async with asyncio.timeout(2.0):
                    response = await self._http.request("GET", path, headers=self._headers)
                    await response.read()
                    response.release()
            except (ConnectionError, OSError, TimeoutError):
                return False
            if response.status == 200:
                return True
        return False

    async def _post(self, body: dict[str, Any]) -> Response:
        try:
            return await self._http.request("POST", self._chat, json.dumps(body).encode(),
                                            headers=self._headers)
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


# What such a server takes beyond plain chat, OpenAI's way (vLLM, llama-server and Ollama take
# ``response_format`` with a JSON schema they hold the answer to, and ``logprobs``); tools are
# built by the gateway from a held answer (model_server/tools.py), so they need only the first.
FEATURES = frozenset({"response_format", "tools", "logprobs"})


def checked_features(features: frozenset[str]) -> frozenset[str]:
    """``features`` of :data:`FEATURES`, or a :class:`ConfigError` for tools without a schema."""
    if "tools" in features and "response_format" not in features:
        raise ConfigError("CHARLA_ENGINE_FEATURES: 'tools' needs 'response_format' (the "
                          "gateway builds tool calls from an answer held to a schema)")
    return features & FEATURES


class OpenAIServerEngine:
    """An OpenAI-compatible server at a URL (``CHARLA_ENGINE=openai``: vLLM, another
    llama-server, Ollama), reached with the gateway's own client."""

    # These take a last assistant message as a finished turn: an answer's start is left out.
    continues_answers = False

    def __init__(self, *, base_url: str, model: str, parallel: int = 8,
                 api_key: str | None = None, connect_timeout_s: float = 2.0,
                 read_timeout_s: float = 120.0, features: frozenset[str] = FEATURES) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"CHARLA_ENGINE_URL must be an http(s) URL, got {base_url!r}")
        self.model = model
        self.parallel = parallel
        self.features = checked_features(features)
        self._proxy = OpenAIHTTPProxy(
            url.hostname, url.port or (443 if url.scheme == "https" else 80),
            connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s,
            tls=ssl.create_default_context() if url.scheme == "https" else None,
            prefix=url.path.rstrip("/").removesuffix("/v1"), api_key=api_key,
            health=("/health", "/v1/models"))  # Ollama answers only the second

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._proxy.close()

    async def ready(self) -> bool:
        return await self._proxy.ready()

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        return await self._proxy.complete(body, usage)

    def stream(self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
               ) -> AsyncGenerator[bytes, None]:
        return self._proxy.stream(body, usage, forward_usage=forward_usage)
