"""The OpenAI-compatible API for a team's own programs: ``/v1/chat/completions``, ``/v1/models``.

Glue only: authenticate, limit (middlewares) → validate → the answer pipeline
(functions/pipeline.py: moderation, the knowledge base, the model server as ``api:<client>``,
the checks) → the answer in OpenAI's shapes, streamed or whole → record the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions.answer_checks import Form
from functions.api.moderations import (
    CONTENT_FILTER,
    content_filter_events,
    input_refused,
    stream_id,
)
from functions.api.rag import (
    citations,
    dont_know_answer,
    ended_events,
    fact_check_field,
    ground,
    replaced_events,
    with_citations,
)
from functions.json_facts import literals
from functions.knowledge import Knowledge
from functions.model_client import ModelClient, ModelServerError
from functions.moderation import WITHHELD, Moderation
from functions.pipeline import Answer, Asked, Ending, How, Pipeline
from functions.sse import UNAVAILABLE, StreamRecorder
from shared.audit import Exchange, record_exchange
from shared.chat import WindowSplit, fit_messages
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
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.moderation = Moderation(self.settings, self.model, self.db)
        self.pipeline = Pipeline.configured(self.settings, self.moderation, self.model)

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


def _called(result: dict[str, Any]) -> bool:
    """Whether a whole answer is a tool call."""
    message = (result.get("choices") or [{}])[0].get("message") or {}
    return bool(message.get("tool_calls"))


def _content(result: dict[str, Any]) -> str:
    """The answer's text, or each tool call it makes as ``name(`` and its arguments (as a stream
    is read, functions/sse.py): what the checks read and the audit log keeps."""
    message = (result.get("choices") or [{}])[0].get("message") or {}
    calls = message.get("tool_calls") or []
    if calls:
        return "\n".join(f"{(c.get('function') or {}).get('name')}("
                         f"{(c.get('function') or {}).get('arguments')}" for c in calls)
    return str(message.get("content") or "")


async def chat_completions(request: Request) -> Response:
    ctx = _ctx(request)
    settings = ctx.settings
    client = subject_of(request)
    chat = parse_chat_request(
        parse_json_object(await read_body(request, settings.max_body_bytes,
                                          timeout_s=settings.body_timeout_s)),
        max_tokens_cap=settings.max_tokens_cap,
    )
    form = (Form.TOOLS if chat.tools is not None else Form.JSON if chat.structured
            else Form.TEXT)
    if form != Form.TEXT and not chat.collections:
        # A structured answer is grounded only when asked: a program that extracts from the
        # text it sends, or calls its own tools, is not answered from documents it did not name.
        chat = replace(chat, collections=[])
    model = chat.model or settings.model_name
    max_tokens = chat.max_tokens or min(settings.default_max_tokens, settings.max_tokens_cap)
    split = WindowSplit(settings.context_window, max_tokens)
    # The audit log keeps what the model read of what the client sent, not the passages.
    exchange = Exchange(client=client, model=model, stream=chat.stream, messages=chat.messages,
                        status=200, latency_ms=0)
    started = time.perf_counter()
    principal = f"api:{client}"
    said = "\n".join(str(m["content"]) for m in chat.messages if m["role"] == "user")
    # What the passages are looked up for, and what a quote from them answers.
    last = next((str(m["content"]) for m in reversed(chat.messages) if m["role"] == "user"),
                said)
    try:
        answer = await ctx.pipeline.begin(Asked(said, last, principal, (principal,),
                                                chat.collections, form=form,
                                                named=literals(chat.response_format)))
        if answer.refused is not None:
            exchange.messages = [{"role": "user", "content": WITHHELD}]
            exchange.status, exchange.error = 400, CONTENT_FILTER
            exchange.latency_ms = _ms(started)
            await ctx.record(exchange)
            await ctx.moderation.record(answer.refused, platform="api", principal=principal,
                                        subject=principal)
            return input_refused(answer.refused)
        known = await answer.ground(lambda: ground(request, chat), whom="this client")
        if known is not None:  # the documents do not answer it: the model is not asked
            exchange.answer, exchange.latency_ms = known.text, _ms(started)
            ctx.later(ctx.record(exchange))
            return dont_know_answer(known.text, chat, model, citations(answer.passages),
                                    refusal=form == Form.JSON)
        prompt = [*chat.messages[:-1], answer.lay_out(chat.messages[-1])]

        def body(scale: float) -> dict[str, Any]:
            fitted = replace(chat, messages=fit_messages(prompt, split, scale=scale))
            exchange.messages = answer.asker_said(fitted.messages)  # what the model read
            return fitted.engine_body(model, split.max_answer_tokens)

        result, events, first = await while_connected(
            request, answer.ask(body, stream=chat.stream))
        ending = (await answer.whole(_content(result), called=_called(result))
                  if result is not None else None)
    except ModelServerError as exc:
        exchange.status, exchange.error, exchange.latency_ms = exc.status, exc.message, _ms(started)
        await ctx.record(exchange)
        raise
    except ClientLeft:
        # Hung up while the model worked: its request was dropped, so the engine stops too.
        exchange.status, exchange.error = CLIENT_CLOSED_REQUEST, CLIENT_DISCONNECTED
        exchange.latency_ms = _ms(started)
        ctx.later(ctx.record(exchange))
        log.info("the client hung up before the answer; the model server's work was stopped")
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if result is not None:
        assert ending is not None
        return _whole(ctx, request, result, ending, answer, exchange, started)
    assert events is not None
    exchange.first_token_ms = _ms(started)
    return StreamingResponse(_relay(ctx, chat, model, answer, events, first, exchange, started),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                      **_knowledge_header(request)})


def _whole(ctx: ApiContext, request: Request, result: dict[str, Any], ending: Ending,
           answer: Answer, exchange: Exchange, started: float) -> Response:
    """A whole completion as the pipeline ended it."""
    choice = (result.get("choices") or [{}])[0]
    usage = result.get("usage") or {}
    principal = answer.asked.sub
    if ending.how == How.WITHHELD:
        assert ending.trip is not None
        choice["message"] = {"role": "assistant", "content": ending.text}
        choice["finish_reason"] = CONTENT_FILTER
        ctx.later(ctx.moderation.record(ending.trip, platform="api", principal=principal,
                                        subject=principal))
    elif ending.how == How.REFUSED:  # JSON stating what no passage states: OpenAI's refusal
        choice["message"] = {"role": "assistant", "content": None, "refusal": ending.text}
        choice["finish_reason"] = "stop"
        result["fact_check"] = fact_check_field(ending.unsupported)
    elif ending.how != How.ANSWERED:  # replaced by a quote, or cut where it started to loop
        choice["message"] = {"role": "assistant", "content": ending.text}
        choice["finish_reason"] = "stop"
        if ending.how == How.REPLACED:
            result["fact_check"] = fact_check_field(ending.unsupported)
    exchange.answer = WITHHELD if ending.how == How.WITHHELD else ending.text
    exchange.finish_reason = choice.get("finish_reason")
    exchange.prompt_tokens = usage.get("prompt_tokens")
    exchange.completion_tokens = usage.get("completion_tokens")
    exchange.latency_ms = _ms(started)
    ctx.later(ctx.record(exchange))  # after the answer: redacting and sealing take a moment
    if answer.passages and ending.how != How.WITHHELD:  # each with its quote
        result["citations"] = citations(answer.passages, ending.text, answer.asked.question)
    return JSONResponse(result, headers=_knowledge_header(request))


async def _relay(ctx: ApiContext, chat: ChatRequest, model: str, answer: Answer,
                 events: AsyncIterator[bytes], first: bytes, exchange: Exchange,
                 started: float) -> AsyncIterator[bytes]:
    """The engine's events as the checks let them through (functions/pipeline.py).

    An event waits until the text it carries has been checked: the word being written could
    still turn into a blocked one (or out of one), and a grounded answer's sentence waits for
    its end (the fact check). The answer's last events (finish reason, usage, [DONE]) wait for
    the checks of the whole answer, so that a check can still end the stream its own way: a
    refusal, a quote in place of the sentence that failed, or an end after a loop's first
    turn. A grounded answer's citations ride on the event that finishes it."""
    recorder = StreamRecorder(forward_usage=chat.include_usage)
    ident = stream_id(first)
    question = answer.asked.question
    held: list[tuple[bytes, int | None]] = []  # (events, the answer's length once they are in)
    sent = 0  # characters of the answer the client has
    shown = ""  # the answer as the client has it, when a check ended it
    ended = False  # False while the client could still leave before the end

    def usage_so_far() -> dict[str, int] | None:
        """The usage chunk's body for a stream the checks ended, when the client asked."""
        if not chat.include_usage:
            return None
        prompt = recorder.prompt_tokens or 0
        written = recorder.completion_tokens or recorder.deltas
        return {"prompt_tokens": prompt, "completion_tokens": written,
                "total_tokens": prompt + written}

    try:
        async for step in answer.stream(events, recorder, first=first, retractable=False):
            held += step.events
            if step.end and answer.passages:
                held = _cited(held, citations(answer.passages, recorder.answer, question))
            while held and (step.end or (held[0][1] is not None
                                         and held[0][1] <= step.shown)):
                out, length = held.pop(0)
                sent = length or sent
                yield out
        ending = answer.ending
        assert ending is not None
        if ending.how == How.WITHHELD:
            shown = WITHHELD
            yield content_filter_events(ident, model, None if sent else ending.text)
        elif ending.how == How.REFUSED:  # nothing of it was sent: JSON is checked whole
            shown = ending.text
            yield replaced_events(ident, model, shown, citations(answer.passages, "", question),
                                  ending.unsupported, usage_so_far(), refusal=True)
        elif ending.how != How.ANSWERED:
            shown = recorder.answer[:sent].strip()
            if ending.how == How.REPLACED:
                added = ("\n\n" if shown else "") + ending.added.lstrip("\n")
                shown += added
                yield replaced_events(ident, model, added,
                                      citations(answer.passages, shown, question),
                                      ending.unsupported, usage_so_far())
            else:
                yield ended_events(ident, model, citations(answer.passages, shown, question)
                                   if answer.passages else None, usage_so_far())
        ended = True
    except ModelServerError as exc:  # mid-answer: the status is sent, so an error event
        recorder.error = exc.message
        yield _sse_error(exc)
    finally:
        # Left before the end: the client disconnected (the server cancels or closes this
        # generator), which the audit row says, rather than passing for a whole answer.
        exchange.answer = shown or recorder.answer
        exchange.finish_reason = recorder.finish_reason
        exchange.prompt_tokens = recorder.prompt_tokens
        exchange.completion_tokens = recorder.completion_tokens
        exchange.error = recorder.error or (None if ended else CLIENT_DISCONNECTED)
        exchange.latency_ms = _ms(started)
        ending = answer.ending
        if ending is not None and ending.how in (How.CUT, How.REPLACED, How.REFUSED):
            exchange.finish_reason = "stop"
        if ending is not None and ending.how == How.WITHHELD:
            assert ending.trip is not None
            exchange.finish_reason = CONTENT_FILTER
            ctx.later(ctx.moderation.record(ending.trip, platform="api",
                                            principal=answer.asked.sub,
                                            subject=answer.asked.sub))
        ctx.later(ctx.record(exchange))


def _cited(held: list[tuple[bytes, int | None]], cited: list[dict[str, Any]]
           ) -> list[tuple[bytes, int | None]]:
    """``held`` with the citations on the event that finishes the answer."""
    for i, (out, length) in enumerate(held):
        if length is None:
            return [*held[:i], (with_citations(out, cited), None), *held[i + 1:]]
    return held


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
