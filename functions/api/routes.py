"""The OpenAI-compatible API for a team's own programs: ``/v1/chat/completions``, ``/v1/models``.

Glue only: authenticate, limit (middlewares) → validate → fit the context window →
ask the model server as ``api:<client>`` → answer (streamed or whole) → record the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions.answering import AnswerChecks, Stop
from functions.api.moderations import (
    CONTENT_FILTER,
    content_filter_events,
    input_refused,
    stream_id,
)
from functions.api.overflow import overflow_scale
from functions.api.rag import (
    dont_know_answer,
    ended_events,
    fact_check_field,
    ground,
    replaced_events,
    with_citations,
)
from functions.knowledge import Knowledge
from functions.model_client import ModelClient, ModelServerError
from functions.moderation import WITHHELD, Moderation, Trip, refusal
from functions.sse import UNAVAILABLE, StreamRecorder
from shared.audit import Exchange, record_exchange
from shared.chat import Budget, Message, fit_messages, prompt_tokens
from shared.db import Database
from shared.errors import CharlaError
from shared.http import (
    CLIENT_CLOSED_REQUEST,
    ClientLeft,
    read_body,
    subject_of,
    while_connected,
)
from shared.openai_schema import ChatRequest, error_event, parse_chat_request, parse_json_object
from shared.redact import redact_messages
from shared.settings import Settings

log = logging.getLogger(__name__)

# The audit row's error for an answer its client hung up on before the end.
CLIENT_DISCONNECTED = "client_disconnected"


@dataclass
class ApiContext:
    """What the API routes share; lives on ``app.state.api``."""

    settings: Settings
    db: Database | None
    model: ModelClient
    knowledge: Knowledge | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    moderation: Moderation = field(init=False)  # from the settings; the policy is read once

    def __post_init__(self) -> None:
        self.moderation = Moderation(self.settings, self.model, self.db)

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


def _content(result: dict[str, Any]) -> str:
    choice = (result.get("choices") or [{}])[0]
    return str((choice.get("message") or {}).get("content") or "")


async def chat_completions(request: Request) -> Response:
    ctx = _ctx(request)
    settings = ctx.settings
    client = subject_of(request)
    chat = parse_chat_request(
        parse_json_object(await read_body(request, settings.max_body_bytes,
                                          timeout_s=settings.body_timeout_s)),
        max_tokens_cap=settings.max_tokens_cap,
    )
    model = chat.model or settings.model_name
    max_tokens = chat.max_tokens or min(settings.default_max_tokens, settings.max_tokens_cap)
    budget = Budget(settings.context_window, max_tokens)
    exchange = Exchange(client=client, model=model, stream=chat.stream, messages=chat.messages,
                        status=200, latency_ms=0)
    started = time.perf_counter()
    asked = list(chat.messages)
    if ctx.settings.redact_model_input:  # a shared model host sees no personal data
        asked = cast(list[Message], redact_messages(asked))
    references: Message | None = None
    principal = f"api:{client}"
    question = "\n".join(str(m["content"]) for m in chat.messages if m["role"] == "user")
    # What the passages were looked up for, and what a quote from them answers.
    asked_last = next((str(m["content"]) for m in reversed(chat.messages)
                       if m["role"] == "user"), question)
    try:
        scopes = await ctx.moderation.scopes([principal], chat.collections)
        trip = await ctx.moderation.check_input(question, scopes, sub=principal)
        if trip is not None:
            exchange.messages = [{"role": "user", "content": WITHHELD}]
            exchange.status, exchange.error = 400, CONTENT_FILTER
            exchange.latency_ms = _ms(started)
            await ctx.record(exchange)
            await ctx.moderation.record(trip, platform="api", principal=principal,
                                        subject=principal)
            return input_refused(trip)
        grounding = await ground(request, chat)
        if grounding is not None and not grounding.passages:
            exchange.answer, exchange.latency_ms = grounding.dont_know, _ms(started)
            ctx.later(ctx.record(exchange))
            return dont_know_answer(grounding, chat, model)
        if grounding is not None:
            asked, references = grounding.with_references(asked)
        result, events, first = await while_connected(
            request, _first_answer(ctx, chat, asked, budget, model, principal))
        withheld = None
        if result is not None:
            withheld = await ctx.moderation.check_output(question, _content(result), scopes,
                                                         sub=principal)
    except ModelServerError as exc:
        exchange.status, exchange.error, exchange.latency_ms = exc.status, exc.message, _ms(started)
        await ctx.record(exchange)
        raise
    except ClientLeft:
        # Hung up while the model worked: its request was dropped, so the engine stops too.
        exchange.messages = [m for m in chat.messages if m is not references]
        exchange.status, exchange.error = CLIENT_CLOSED_REQUEST, CLIENT_DISCONNECTED
        exchange.latency_ms = _ms(started)
        ctx.later(ctx.record(exchange))
        log.info("the client hung up before the answer; the model server's work was stopped")
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    # The audit log keeps what the client sent, not the passages we added.
    exchange.messages = [m for m in chat.messages if m is not references]
    citations = grounding.citations if grounding is not None else None
    if result is not None:
        choice = (result.get("choices") or [{}])[0]
        usage = result.get("usage") or {}
        if withheld is not None:
            choice["message"] = {"role": "assistant", "content": refusal(question)}
            choice["finish_reason"], citations = CONTENT_FILTER, None
            await ctx.moderation.record(withheld, platform="api", principal=principal,
                                        subject=principal)
        else:
            checks = AnswerChecks(ctx.moderation, scopes, question=asked_last,
                                  passages=grounding.passages if grounding is not None else ())
            content = _content(result)
            stop = checks.feed(content, whole=True)
            if stop is not None and stop.facts is not None:
                choice["message"] = {"role": "assistant", "content": checks.replacement()}
                choice["finish_reason"] = "stop"
                result["fact_check"] = fact_check_field(stop.facts.unsupported)
            elif stop is not None and stop.loop is not None:
                choice["message"] = {"role": "assistant", "content": content[:stop.loop.cut]}
                choice["finish_reason"] = "stop"
        exchange.answer = (choice.get("message") or {}).get("content")
        if withheld is not None:
            exchange.answer = WITHHELD
        exchange.finish_reason = choice.get("finish_reason")
        exchange.prompt_tokens = usage.get("prompt_tokens")
        exchange.completion_tokens = usage.get("completion_tokens")
        exchange.latency_ms = _ms(started)
        ctx.later(ctx.record(exchange))  # after the answer: redacting and sealing take a moment
        if citations is not None and grounding is not None:  # each with its quote
            result["citations"] = grounding.cite(_content(result), asked_last)
        return JSONResponse(result, headers=_knowledge_header(request))
    assert events is not None
    exchange.first_token_ms = _ms(started)
    recorder = StreamRecorder(forward_usage=chat.include_usage)
    checks = AnswerChecks(ctx.moderation, scopes, question=asked_last,
                          passages=grounding.passages if grounding is not None else ())
    cut_by: list[Trip] = []
    replaced: list[str] = []  # what the client was shown instead of an answer the check stopped
    cited: list[bool] = []  # the citations went out

    def cite(shown: str) -> list[dict[str, Any]]:
        """The citations, each quoting what in its passage supports ``shown``."""
        assert grounding is not None
        return grounding.cite(shown, asked_last)

    async def upstream() -> AsyncIterator[bytes | None]:
        yield first
        async for chunk in events:
            yield chunk
        yield None  # the end: what is left in the recorder's buffer

    def forward(chunk: bytes | None) -> list[tuple[bytes, int | None]]:
        """What the client gets of each event of ``chunk`` (None: the end), with the answer's
        length once it is in (None for the finishing event and after); a grounded answer's
        citations ride on the event that finishes it."""
        pieces = recorder.feed_each(chunk)
        if citations is not None and not cited:
            for i, (out, length) in enumerate(pieces):
                if length is None:  # the finishing event
                    pieces[i] = (with_citations(out, cite(recorder.answer)), None)
                    cited.append(True)
                    break
        return pieces

    def usage_so_far() -> dict[str, int] | None:
        """The usage chunk's body for a stream the checks ended, when the client asked."""
        if not chat.include_usage:
            return None
        prompt, written = recorder.prompt_tokens or 0, recorder.completion_tokens or 0
        return {"prompt_tokens": prompt, "completion_tokens": written,
                "total_tokens": prompt + written}

    def replacing(stop: Stop, sent: int) -> bytes:
        """The end of a stream whose answer stated a fact its passages do not: the quote (or
        "I don't know") after the sentences already sent, which were checked."""
        assert stop.facts is not None and citations is not None
        text = checks.replacement()
        replaced.append(recorder.answer[:sent] + ("\n\n" if sent else "") + text)
        return replaced_events(stream_id(first), model, ("\n\n" if sent else "") + text,
                               cite(replaced[-1]), stop.facts.unsupported, usage_so_far())

    async def relay() -> AsyncIterator[bytes]:
        # Events wait until the text they carry has been checked: the word being written
        # could still turn into a blocked one (or out of one), so it goes with the next event;
        # a grounded answer's text waits for the end of its sentence (the fact check). The
        # answer's last events (finish reason, usage, [DONE]) wait for the checks of the whole
        # answer at the end, so that a cut can still end the stream.
        held: list[tuple[bytes, int | None]] = []  # (events, answer's length once they are in)
        sent = 0  # characters of the answer the client has
        ended = False  # False while the client could still leave before the end
        facts_failed: Stop | None = None  # the model's text is no longer shown; its end awaited
        try:
            async for chunk in upstream():
                pieces = forward(chunk)
                end = chunk is None
                if facts_failed is not None:
                    # The model writes on (its usage counts what it wrote); the client gets
                    # none of it, and the replacement once it is done.
                    if recorder.error is not None and pieces:
                        yield b"".join(out for out, _ in pieces)
                        ended = True
                        return
                    if end:
                        yield replacing(facts_failed, sent)
                        ended = True
                    continue
                held += pieces
                stop = checks.feed(recorder.answer, whole=end)
                if stop is not None and stop.facts is not None:
                    facts_failed = stop
                    held.clear()
                    if end:
                        yield replacing(facts_failed, sent)
                        ended = True
                    continue
                if stop is not None and stop.loop is not None:
                    # It loops: what the client has of it before the cut ends it, and the
                    # engine stops writing.
                    answer = recorder.answer
                    bound = min(stop.loop.cut, checks.checked(answer))
                    while bound < len(answer) and answer[bound].isspace():
                        bound += 1  # the spaces after the first turn's end go with it
                    while held and held[0][1] is not None and held[0][1] <= bound:
                        out, length = held.pop(0)
                        sent = length or sent
                        yield out
                    replaced.append(recorder.answer[:sent])
                    yield ended_events(stream_id(first), model,
                                       None if citations is None else cite(replaced[-1]),
                                       usage_so_far())
                    ended = True
                    if not end and isinstance(events, AsyncGenerator):
                        await events.aclose()
                    return
                trip = stop.trip if stop is not None else None
                if trip is None and end and recorder.error is None:
                    trip = await ctx.moderation.judge_streamed(question, recorder.answer,
                                                               sub=principal)
                if trip is not None:
                    cut_by.append(trip)
                    yield content_filter_events(stream_id(first), model,
                                                None if sent else refusal(question))
                    ended = True
                    if not end and isinstance(events, AsyncGenerator):
                        await events.aclose()  # the engine stops writing what nobody will see
                    return
                checked = checks.checked(recorder.answer)
                while held and (end or (held[0][1] is not None and held[0][1] <= checked)):
                    out, length = held.pop(0)
                    sent = length or sent
                    yield out
            ended = True
        except ModelServerError as exc:  # mid-answer: the status is sent, so an error event
            recorder.error = exc.message
            yield _sse_error(exc)
        finally:
            # Left before the end: the client disconnected (the server cancels or closes this
            # generator), which the audit row says, rather than passing for a whole answer.
            exchange.answer = recorder.answer
            exchange.finish_reason = recorder.finish_reason
            exchange.prompt_tokens = recorder.prompt_tokens
            exchange.completion_tokens = recorder.completion_tokens
            exchange.error = recorder.error or (None if ended else CLIENT_DISCONNECTED)
            exchange.latency_ms = _ms(started)
            if replaced:
                exchange.answer, exchange.finish_reason = replaced[0], "stop"
            if cut_by:
                exchange.answer, exchange.finish_reason = WITHHELD, CONTENT_FILTER
                ctx.later(ctx.moderation.record(cut_by[0], platform="api",
                                                principal=principal, subject=principal))
            ctx.later(ctx.record(exchange))

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                      **_knowledge_header(request)})


def _sse_error(exc: ModelServerError) -> bytes:
    """The event that ends a stream the model server broke off, with its reason (timeout or
    unavailable) in OpenAI's error shape."""
    return error_event(exc.message, exc.code or UNAVAILABLE)


def _knowledge_header(request: Request) -> dict[str, str]:
    """Says when the answer could not look at the knowledge base (the database was away)."""
    state = getattr(request.state, "knowledge", None)
    return {"X-Charla-Knowledge": state} if state else {}


async def list_models(request: Request) -> Response:
    ctx = _ctx(request)
    listed = await ctx.model.get("/v1/models", sub=f"api:{subject_of(request)}")
    chat_models = [m for m in listed.get("data", [])
                   if m.get("id") != ctx.settings.embedding_model_name]
    return JSONResponse({"object": "list", "data": chat_models})
