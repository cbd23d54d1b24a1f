"""The OpenAI-compatible API for a team's own programs: ``/v1/chat/completions``, ``/v1/models``.

Glue only: authenticate (middleware) → limit (slowapi) → validate → fit the context window →
ask the model server as ``api:<client>`` → answer (streamed or whole) → record the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions.api.overflow import overflow_scale
from functions.api.rag import citations_event, dont_know_answer, ground
from functions.knowledge import Knowledge
from functions.model_client import ModelClient, ModelServerError
from functions.sse import StreamRecorder
from shared.audit import Exchange, record_exchange
from shared.chat import Budget, Message, fit_messages, prompt_tokens
from shared.db import Database
from shared.errors import CharlaError
from shared.http import read_body, subject_of
from shared.openai_schema import ChatRequest, parse_chat_request, parse_json_object
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """What the API routes share; lives on ``app.state.api``."""

    settings: Settings
    db: Database | None
    model: ModelClient
    knowledge: Knowledge | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the response, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def record(self, exchange: Exchange) -> None:
        """Store the exchange; an audit failure is logged, never turned into a failed answer."""
        if self.db is None:
            return
        try:
            await record_exchange(self.db, exchange,
                                  keep_bodies=self.settings.audit_retention_days > 0)
        except CharlaError:
            log.error("audit record lost for client %s: database unavailable", exchange.client)


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


async def _first_answer(
    ctx: ApiContext, chat: ChatRequest, original: list[Message], budget: Budget, model: str,
    sub: str,
) -> tuple[dict[str, Any] | None, AsyncIterator[bytes] | None, bytes]:
    """Ask the model server; if the engine says the prompt is too long, fit again and retry once.

    Returns the whole answer, or the open event stream and its first chunk.
    """
    scale = 1.0
    for attempt in (1, 2):
        chat.messages = fit_messages(original, budget, scale=scale)
        body = chat.engine_body(model, budget.max_answer_tokens)
        try:
            if not chat.stream:
                return await ctx.model.complete(body, sub=sub), None, b""
            events = ctx.model.stream(body, sub=sub)
            return None, events, await anext(events)
        except ModelServerError as exc:
            if exc.code != "context_length_exceeded" or attempt == 2:
                raise
            scale = overflow_scale(exc.message, prompt_tokens(chat.messages))
            log.info("prompt over the engine's window; fitting again with scale %.2f", scale)
    raise AssertionError("unreachable")


async def chat_completions(request: Request) -> Response:
    ctx = _ctx(request)
    settings = ctx.settings
    client = subject_of(request)
    chat = parse_chat_request(
        parse_json_object(await read_body(request, settings.max_body_bytes)),
        max_tokens_cap=settings.max_tokens_cap,
    )
    model = chat.model or settings.model_name
    max_tokens = chat.max_tokens or min(settings.default_max_tokens, settings.max_tokens_cap)
    budget = Budget(settings.context_window, max_tokens)
    exchange = Exchange(client=client, model=model, stream=chat.stream, messages=chat.messages,
                        status=200, latency_ms=0)
    started = time.perf_counter()
    asked = list(chat.messages)
    references: Message | None = None
    try:
        grounding = await ground(request, chat)
        if grounding is not None and not grounding.passages:
            exchange.answer, exchange.latency_ms = grounding.dont_know, _ms(started)
            await ctx.record(exchange)
            return dont_know_answer(grounding, chat, model)
        if grounding is not None:
            asked, references = grounding.with_references(asked)
        result, events, first = await _first_answer(ctx, chat, asked, budget, model,
                                                     f"api:{client}")
    except ModelServerError as exc:
        exchange.status, exchange.error, exchange.latency_ms = exc.status, exc.message, _ms(started)
        await ctx.record(exchange)
        raise
    # The audit log keeps what the client sent, not the passages we added.
    exchange.messages = [m for m in chat.messages if m is not references]
    citations = grounding.citations if grounding is not None else None
    if result is not None:
        choice = (result.get("choices") or [{}])[0]
        usage = result.get("usage") or {}
        exchange.answer = (choice.get("message") or {}).get("content")
        exchange.finish_reason = choice.get("finish_reason")
        exchange.prompt_tokens = usage.get("prompt_tokens")
        exchange.completion_tokens = usage.get("completion_tokens")
        exchange.latency_ms = _ms(started)
        await ctx.record(exchange)
        if citations is not None:
            result["citations"] = citations
        return JSONResponse(result)
    assert events is not None
    exchange.first_token_ms = _ms(started)
    recorder = StreamRecorder(forward_usage=chat.include_usage)
    if citations is not None:
        recorder.before_done = citations_event(None, model, citations)

    async def relay() -> AsyncIterator[bytes]:
        try:
            out = recorder.feed(first)
            if out:
                yield out
            async for chunk in events:
                out = recorder.feed(chunk)
                if out:
                    yield out
            out = recorder.flush()
            if out:
                yield out
        except ModelServerError as exc:
            recorder.error = exc.message
            yield b'data: {"error":{"message":"the model server stopped answering",' \
                  b'"type":"server_error"}}\n\n'
        finally:
            exchange.answer = recorder.answer
            exchange.finish_reason = recorder.finish_reason
            exchange.prompt_tokens = recorder.prompt_tokens
            exchange.completion_tokens = recorder.completion_tokens
            exchange.error = recorder.error
            exchange.latency_ms = _ms(started)
            ctx.later(ctx.record(exchange))

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def list_models(request: Request) -> Response:
    ctx = _ctx(request)
    listed = await ctx.model.get("/v1/models", sub=f"api:{subject_of(request)}")
    chat_models = [m for m in listed.get("data", [])
                   if m.get("id") != ctx.settings.embedding_model_name]
    return JSONResponse({"object": "list", "data": chat_models})
