"""The one interface every engine behind the gateway implements, and its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


class EngineError(Exception):
    """The engine could not answer; ``status`` is what the gateway answers with."""

    status = 502

    def __init__(self, message: str, status: int | None = None, code: str | None = None
                 ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status


class EngineUnavailable(EngineError):
    """The engine is not reachable or not ready (503)."""

    status = 503


class EngineTimeout(EngineError):
    """The engine took longer than allowed (504)."""

    status = 504


class EngineRejected(EngineError):
    """The engine refused the request as malformed (its own 4xx)."""

    status = 400


@dataclass
class Usage:
    """Token counts of one request, filled in as the engine reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def update(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)


class ChatEngine(Protocol):
    """A chat model behind an OpenAI-compatible surface."""

    model: str
    parallel: int

    async def start(self) -> None:
        """Make the engine ready (start a process, open a client)."""

    async def close(self) -> None:
        """Release what :meth:`start` took."""

    async def ready(self) -> bool:
        """Whether the engine answers now."""

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        """A whole ``chat.completion`` object for an OpenAI-style request body."""

    def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncIterator[bytes]:
        """Server-sent events (``data: {...}\\n\\n`` ... ``data: [DONE]\\n\\n``) as they come.

        The engine fills ``usage`` from its final chunk; that chunk is only forwarded to the
        caller when ``forward_usage`` is set (the caller asked for ``include_usage``).
        """


class Embedder(Protocol):
    """A text embedding model."""

    model: str
    dim: int

    async def embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        """One unit-length vector per text."""

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the texts cost, for usage reports and budgets."""
