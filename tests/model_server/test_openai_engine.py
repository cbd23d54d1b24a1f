"""``CHARLA_ENGINE=openai``: what the gateway's own client sends a server at a URL.

The server here stands in for one such engine (vLLM, Ollama) only to see the request: the URL's
path before ``/v1``, the engine's key, OpenAI's ``response_format`` untouched, and where it asks
whether the engine is up (Ollama answers only ``/v1/models``). The answers themselves are
tested against llama-server (tests/model_server/test_structured.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_server.engines.base import Usage
from model_server.engines.openai_http import OpenAIServerEngine
from shared.errors import ConfigError
from tests.conftest import ServerThread

SCHEMA = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}


@pytest.fixture(scope="module")
def seen() -> Iterator[tuple[str, list[tuple[str, str, dict[str, Any] | None]]]]:
    """Keeps each request's path, Authorization header and body."""
    requests: list[tuple[str, str, dict[str, Any] | None]] = []

    async def chat(request: Request) -> Response:
        requests.append((request.url.path, request.headers.get("authorization", ""),
                         await request.json()))
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "{}"}}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                       "total_tokens": 4}})

    async def models(request: Request) -> Response:
        requests.append((request.url.path, request.headers.get("authorization", ""), None))
        return JSONResponse({"object": "list", "data": []})

    app = Starlette(routes=[Route("/ollama/v1/chat/completions", chat, methods=["POST"]),
                            Route("/ollama/v1/models", models)])
    server = ServerThread(app).start()
    yield server.url, requests
    server.stop()


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_the_request_goes_as_openai_sends_it_with_the_engines_key(
    seen: tuple[str, list[tuple[str, str, dict[str, Any] | None]]], suffix: str
) -> None:
    url, requests = seen
    engine = OpenAIServerEngine(base_url=f"{url}/ollama{suffix}", model="m", api_key="k-123")
    try:
        assert await engine.ready()  # /health is not there: /v1/models is
        usage = Usage()
        await engine.complete({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                               "response_format": SCHEMA}, usage)
    finally:
        await engine.close()
    assert requests[-2][:2] == ("/ollama/v1/models", "Bearer k-123")
    path, key, body = requests[-1]
    assert (path, key) == ("/ollama/v1/chat/completions", "Bearer k-123")
    assert body is not None and body["response_format"] == SCHEMA
    assert usage.prompt_tokens == 3


def test_a_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CHARLA_ENGINE_URL"):
        OpenAIServerEngine(base_url="gpu-host:8080", model="m")
