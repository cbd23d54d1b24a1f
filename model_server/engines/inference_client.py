"""An upstream engine at a URL through huggingface_hub: TGI, whose dialect it speaks (other
OpenAI-compatible servers answer it too, but read no JSON schema from it: for them,
``CHARLA_ENGINE=openai``, model_server/engines/openai_http.py).

``AsyncInferenceClient`` speaks the OpenAI-compatible chat route that all of these serve, and
TGI's own error shapes; we turn its errors into the gateway's three (unavailable, timeout,
rejected) so callers see the same answers whatever runs upstream.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

from model_server.engines.base import (
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Usage,
)
from model_server.engines.openai_http import FEATURES, checked_features

_PASSED = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty",
           "frequency_penalty", "stream_options", "logprobs", "top_logprobs")


def tgi_response_format(asked: dict[str, Any]) -> dict[str, Any]:
    """``response_format`` as huggingface_hub is to send it to TGI: it rewrites OpenAI's
    ``json_schema`` into TGI's grammar (``{"type": "json_object", "value": <schema>}``); TGI's
    ``json_object`` needs a schema too, so OpenAI's bare JSON mode asks for any object."""
    if asked.get("type") == "json_object":
        return {"type": "json_schema",
                "json_schema": {"name": "object", "schema": {"type": "object"}}}
    return asked


def _transport_errors() -> tuple[type[BaseException], ...]:
    """huggingface_hub moved between HTTP libraries; catch whichever it uses."""
    errors: list[type[BaseException]] = [httpx.TransportError, ConnectionError]
    with contextlib.suppress(ImportError, AttributeError):
        errors.append(importlib.import_module("httpx2").TransportError)
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


def _rejected(exc: HfHubHTTPError) -> EngineRejected:
    """Keep the engine's reason: callers need it (a context overflow is retried shorter)."""
    message = "the upstream engine refused the request"
    try:
        body = json.loads(exc.response.text)
        detail = body.get("error", body.get("message", message))
        message = str(detail.get("message", detail) if isinstance(detail, dict) else detail)
    except (ValueError, AttributeError):
        pass
    lowered = message.lower()
    overflow = "context" in lowered or ("tokens" in lowered and "must be" in lowered)
    return EngineRejected(message[:300], 400, "context_length_exceeded" if overflow else None)


def _translate(exc: BaseException) -> EngineError:
    if isinstance(exc, InferenceTimeoutError):
        return EngineTimeout("the upstream engine did not answer in time")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 502
        if status in (400, 422):
            return _rejected(exc)
        if status in (502, 503):
            return EngineUnavailable("the upstream engine is unavailable")
        if status == 504:
            return EngineTimeout("the upstream engine timed out")
        return EngineError(f"the upstream engine failed ({status})")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return EngineUnavailable("the upstream engine is not reachable")
    return EngineError("the upstream engine failed")


class InferenceClientEngine:
    """Chat completions from an OpenAI-compatible server at ``base_url``."""

    # TGI, vLLM and Ollama take a last assistant message as a finished turn, unless asked
    # otherwise in ways of their own: an answer's start is left out for them.
    continues_answers = False

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        parallel: int = 8,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        features: frozenset[str] = FEATURES,
    ) -> None:
        self.features = checked_features(features)
        self.model = model
        self.parallel = parallel
        self._base_url = base_url.rstrip("/")
        self._client = AsyncInferenceClient(base_url=self._base_url, api_key=api_key,
                                            timeout=timeout_s)
        self._probe = httpx.AsyncClient(timeout=2.0)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
        await self._probe.aclose()

    async def ready(self) -> bool:
        # TGI, vLLM and llama-server all answer /health; Ollama answers /v1/models.
        root = self._base_url.removesuffix("/v1")
        for path in ("/health", "/v1/models"):
            try:
                response = await self._probe.get(root + path)
            except httpx.HTTPError:
                return False
            if response.status_code == 200:
                return True
        return False

    def _kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: body[k] for k in _PASSED if k in body}
        if "response_format" in body:
            kwargs["response_format"] = tgi_response_format(body["response_format"])
        return kwargs

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        try:
            output = await self._client.chat_completion(
                body["messages"], model=self.model, stream=False, **self._kwargs(body)
            )
        except Exception as exc:
            raise _translate(exc) from exc
        result: dict[str, Any] = json.loads(json.dumps(output))
        usage.update(result.get("usage"))
        result["model"] = self.model
        return result

    async def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        try:
            chunks = await self._client.chat_completion(
                body["messages"], model=self.model, stream=True, **self._kwargs(body)
            )
            async for chunk in chunks:
                data = json.loads(json.dumps(chunk))
                if data.get("usage"):
                    usage.update(data["usage"])
                    if not data.get("choices") and not forward_usage:
                        continue
                data["model"] = self.model
                event = b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
                usage.count_deltas(event)
                yield event
        except EngineError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc
        yield b"data: [DONE]\n\n"
