"""``POST /v1/chat/completions``: limits, the request checked, the engine, the charge.

A whole answer is awaited while the client stays connected; a streamed one is answered only
once the engine's first event has come, so an engine that fails at the start gets a real
status rather than a stream that breaks at once. Either way the request's tokens are charged
once (:class:`~model_server.charges.Charge`), however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from model_server.charges import Charge
from model_server.engines.base import EngineError, EngineTimeout
from model_server.event_stream import EventStream
from model_server.gateway import Gateway, gateway_of, json_body
from model_server.tools import engine_request, with_tool_calls
from model_server.tools_stream import as_written
from shared.errors import BadRequest
from shared.http import CLIENT_CLOSED_REQUEST, ClientLeft, subject_of, while_connected
from shared.openai_schema import error_event, parse_chat_request
from shared.tools_schema import Tools

log = logging.getLogger(__name__)


async def chat_completions(request: Request) -> Response:
    gw = gateway_of(request)
    sub = subject_of(request)
    began = gw.budget.mark()  # its tokens are charged at the end: not if forgotten meanwhile
    refused = gw.request_refusal(sub)
    if refused is not None:
        return refused
    chat = parse_chat_request(await json_body(request, gw),
                              max_tokens_cap=gw.settings.max_tokens_cap, prefill=True)
    for feature, asked in (("response_format", chat.response_format is not None),
                           ("tools", chat.tools is not None), ("logprobs", chat.logprobs)):
        if asked and feature not in gw.engine.features:
            raise BadRequest(f"'{feature}' is not supported by this model server's engine "
                             f"({type(gw.engine).__name__})", feature)
    if chat.messages[-1]["role"] == "assistant" and not gw.engine.continues_answers:
        # The start of an answer, for an engine that would take it as a turn of its own:
        # it is left out, and the engine answers from the start.
        chat.messages = chat.messages[:-1]
        if not chat.messages:
            raise BadRequest("the last message must come from the user or the system",
                             "messages")
    # One model per gateway: like TGI and llama-server, any requested name is served by it
    # (clients hard-code names such as "tgi" or "dummy"); the answer's "model" says which.
    body = chat.engine_body(gw.engine.model, chat.max_tokens or gw.settings.max_tokens_cap)
    if chat.tools is not None:  # built from JSON the engine is held to (model_server/tools.py)
        body = engine_request(body, chat.tools)
    charge = Charge(gw, sub, body["messages"], began)
    # The budget's check holds the most this request can cost, in the same step: nothing is
    # awaited between them, so requests at once cannot all pass it (model_server/charges.py).
    refused = gw.budget_refusal(charge.hold(body["max_tokens"]))
    if refused is not None:
        return refused
    started = time.perf_counter()
    if not chat.stream:
        gw.metrics.engine_enter(gw.engine.parallel)
        # A client that hangs up drops the engine's request too, and llama-server stops within
        # its one-second poll of the connection. The answer's tokens are then unknown: the
        # prompt is charged, by estimate.
        try:
            result = await while_connected(request, gw.engine.complete(body, charge.usage))
            charge.engine_worked = True
        except ClientLeft:
            charge.engine_worked = True
            return _client_left()
        except (EngineTimeout, asyncio.CancelledError):
            charge.engine_worked = True  # it worked on the request until then
            raise
        finally:
            gw.metrics.engine_leave(gw.engine.parallel)
            charge.settle()
        gw.metrics.chat_latency.observe(time.perf_counter() - started)
        if chat.tools is not None:
            result = with_tool_calls(result, chat.tools)
        return JSONResponse(result)
    return await _start_stream(request, gw, body, charge, chat.include_usage, started,
                               chat.tools)


def _client_left() -> Response:
    """The answer to a caller that hung up: nobody reads it, but the metrics count it."""
    log.info("the client hung up before the answer; the engine's work on it was stopped")
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _start_stream(
    request: Request, gw: Gateway, body: dict[str, Any], charge: Charge, include_usage: bool,
    started: float, tools: Tools | None = None,
) -> Response:
    """Wait for the first event before answering, so an engine failure gets a real status.
    A tool answer's JSON is turned into OpenAI's calls as it comes (model_server/
    tools_stream.py)."""
    gw.metrics.engine_enter(gw.engine.parallel)
    usage = charge.usage
    events = gw.engine.stream(body, usage, forward_usage=include_usage)
    if tools is not None:
        events = as_written(events, tools)

    async def first_event() -> bytes:
        async with asyncio.timeout(gw.settings.model_first_token_timeout_s):
            return await anext(events)

    try:
        first = await while_connected(request, first_event())
    except BaseException as exc:
        gw.metrics.engine_leave(gw.engine.parallel)
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
        charge.engine_worked = isinstance(exc, (TimeoutError, asyncio.CancelledError,
                                                ClientLeft))
        charge.settle()
        if isinstance(exc, ClientLeft):
            return _client_left()
        if isinstance(exc, TimeoutError):
            raise EngineError("the engine did not start answering in time", 504) from None
        if isinstance(exc, StopAsyncIteration):
            raise EngineError("the engine closed the stream without answering") from None
        raise
    gw.metrics.first_token.observe(time.perf_counter() - started)

    async def relay() -> AsyncIterator[bytes]:
        try:
            yield first
            async for event in events:
                yield event
        except EngineError as exc:
            # Headers are gone already: tell the client in the stream, as OpenAI does.
            yield error_event(exc.message, exc.code or "engine_error")
        finally:
            # Reached however the stream ends: to its end, an engine failure, a cancellation
            # when the client hangs up, or aclose() (GeneratorExit) by whoever stops reading.
            gw.metrics.engine_leave(gw.engine.parallel)
            gw.metrics.chat_latency.observe(time.perf_counter() - started)
            charge.engine_worked = True
            charge.settle()
            # The engine's stream too, which drops its connection if it is still open.
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]

    return EventStream(relay())
