"""The one interface every engine behind the gateway implements, and its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from shared.errors import UpstreamError


class EngineError(UpstreamError):
    """The engine could not answer; ``status`` is what the gateway answers with, ``code``
    the reason a client can act on (in the JSON error, or the event that ends a stream)."""

    status = 502
    code: str | None = "engine_error"

    def __init__(self, message: str, status: int | None = None, code: str | None = None
                 ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class EngineUnavailable(EngineError):
    """The engine is not reachable or not ready (503)."""

    status = 503
    code = "engine_unavailable"


class EngineTimeout(EngineError):
    """The engine took longer than allowed (504)."""

    status = 504
    code = "engine_timeout"


class EngineRejected(EngineError):
    """The engine refused the request as malformed (its own 4xx)."""

    status = 400
    code = None


# What a streamed delta with text carries: ``"content":"`` (answer) or ``"reasoning_content":"``.
# Inside a JSON string a quote is escaped (``\"``), so no text in an answer can match it.
_TEXT_DELTA = b'content":"'


@dataclass
class Usage:
    """Token counts of one request, filled in as the engine reports them.

    Engines report usage once, at the end (a stream's final chunk), so an answer cut short (the
    client left, the engine failed) has none. For that case each engine counts what passes:
    :attr:`counted` holds the streamed text deltas, about one token each (llama-server, TGI and
    vLLM send one token per event), and :meth:`settle` turns the count and an estimate of the
    prompt into the charge.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False
    counted: int = 0

    def update(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            self.reported = True

    def count_deltas(self, events: bytes) -> None:
        """Count the text deltas in server-sent events as they pass (one C-level scan)."""
        self.counted += events.count(_TEXT_DELTA)

    def settle(self, prompt_estimate: int) -> None:
        """When the engine reported nothing: ``prompt_estimate`` and the deltas counted."""
        if not self.reported:
            self.prompt_tokens = prompt_estimate
            self.completion_tokens = self.counted


class ChatEngine(Protocol):
    """A chat model behind an OpenAI-compatible surface."""

    model: str
    parallel: int
    # Whether a request whose last message is the assistant's gets that message continued
    # (llama.cpp's server does; other engines take it as a finished turn).
    continues_answers: bool
    # What of OpenAI's request it honours beyond plain text (shared/openai_schema.py):
    # "response_format" (JSON, constrained to a schema), "logprobs". Asked of one that does not,
    # the gateway answers 400 naming the field rather than an answer of another shape.
    features: frozenset[str]

    async def start(self) -> None:
        """Make the engine ready (start a process, open a client)."""

    async def close(self) -> None:
        """Release what :meth:`start` took."""

    async def ready(self) -> bool:
        """Whether the engine answers now."""

    async def complete(self, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        """A whole ``chat.completion`` object for an OpenAI-style request body.

        Cancelling it must stop the engine's work on the request. It fills ``usage`` as
        :meth:`stream` does, counting the answer's deltas as they come.
        """

    def stream(
        self, body: dict[str, Any], usage: Usage, *, forward_usage: bool
    ) -> AsyncIterator[bytes]:
        """Server-sent events (``data: {...}\\n\\n`` ... ``data: [DONE]\\n\\n``) as they come.

        The engine fills ``usage`` from its final chunk; that chunk is only forwarded to the
        caller when ``forward_usage`` is set (the caller asked for ``include_usage``). Until
        then it counts the text deltas that pass (:meth:`Usage.count_deltas`).
        """


class Embedder(Protocol):
    """A text embedding model."""

    model: str
    dim: int

    async def embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        """One unit-length vector per text."""

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the texts cost, for usage reports and budgets."""
