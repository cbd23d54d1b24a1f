"""The gateway on the GPU host: service-JWT check, per-user limits, metrics, then the engine.

Every route but ``/healthz`` needs a service token signed by the functions (Ed25519; this
host holds only the public key). Its ``sub`` names the end user the functions act for, so the
request limit and the token budget are per person, not per bot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_server.engines.base import ChatEngine, Embedder, EngineError, EngineTimeout, Usage
from model_server.event_stream import DIRECT_SEND, EventStream
from model_server.metrics import Metrics
from shared.chat import Message, prompt_tokens
from shared.errors import BadRequest
from shared.http import (
    CLIENT_CLOSED_REQUEST,
    BearerTokenBackend,
    ClientLeft,
    auth_error,
    bad_request,
    http_error,
    json_error,
    read_body,
    subject_of,
    unexpected,
    while_connected,
)
from shared.openai_schema import error_event, parse_chat_request, parse_json_object
from shared.ratelimit import Mark, Quota
from shared.settings import Settings
from shared.tokens import TokenVerifier

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS = 2048
FLUSH_S = 0.5


@dataclass
class Gateway:
    """What the routes share; lives on ``app.state.gateway``."""

    settings: Settings
    engine: ChatEngine
    embedder: Embedder
    metrics: Metrics
    requests: Quota
    budget: Quota
    started: float = 0.0

    def refusal(self, sub: str) -> Response | None:
        """429 when ``sub`` is over the request limit or out of tokens, else None."""
        retry = self.requests.take(sub)
        if retry is not None:
            self.metrics.limited_requests.inc()
            return json_error(
                429, f"rate limit exceeded ({self.settings.model_rate_limit}); retry in "
                f"{retry} s", "rate_limit_exceeded", "rate_limit_exceeded",
                headers={"Retry-After": str(retry)})
        retry = self.budget.retry_after(sub)
        if retry is not None:
            self.metrics.limited_tokens.inc()
            return json_error(
                429, f"token budget used up ({self.settings.token_budget}); retry in {retry} s",
                "rate_limit_exceeded", "token_budget_exceeded",
                headers={"Retry-After": str(retry)})
        return None

    async def flush_forever(self) -> None:
        """Write collected request and token charges to the limit storage, off the request path."""
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        # A thread hop costs the idle gateway about a millisecond of CPU a second on 2
        # cores (development measurement): skipped when nothing waits to be written.
        if self.requests.pending or self.budget.pending:
            await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        self.requests.flush()
        self.budget.flush()


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def _json_body(request: Request, gw: Gateway) -> dict[str, Any]:
    return parse_json_object(await read_body(request, gw.settings.max_body_bytes,
                                             timeout_s=gw.settings.body_timeout_s))


async def chat_completions(request: Request) -> Response:
    gw = _gateway(request)
    sub = subject_of(request)
    began = gw.budget.mark()  # its tokens are charged at the end: not if forgotten meanwhile
    refused = gw.refusal(sub)
    if refused is not None:
        return refused
    chat = parse_chat_request(await _json_body(request, gw),
                              max_tokens_cap=gw.settings.max_tokens_cap, prefill=True)
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
    charge = _Charge(gw, sub, chat.messages, began)
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
        return JSONResponse(result)
    return await _start_stream(request, gw, body, charge, chat.include_usage, started)


@dataclass
class _Charge:
    """What one chat request costs its user, charged once however it ends.

    The engine's own usage when it reported it. When it did not (the answer was cut short: the
    client left, a timeout, the engine failed mid-stream; or the engine never reports usage)
    but the engine did work on the request, an estimate: the prompt by the project's
    estimator, since the engine read all of it, plus the answer's tokens counted as they
    passed. Else a user could spend the engine for free by hanging up before the end. The
    tokens metrics count exactly what is charged.
    """

    gw: Gateway
    sub: str
    messages: list[Message]
    began: Mark
    usage: Usage = field(default_factory=Usage)
    engine_worked: bool = False
    _done: bool = False

    def settle(self) -> None:
        if self._done:
            return
        self._done = True
        usage = self.usage
        if not usage.reported and self.engine_worked:
            usage.settle(prompt_tokens(self.messages))
            self.gw.metrics.estimated_usage.inc()
        self.gw.metrics.prompt_tokens.inc(usage.prompt_tokens)
        self.gw.metrics.completion_tokens.inc(usage.completion_tokens)
        self.gw.budget.charge(self.sub, usage.prompt_tokens + usage.completion_tokens,
                              began=self.began)


def _client_left() -> Response:
    """The answer to a caller that hung up: nobody reads it, but the metrics count it."""
    log.info("the client hung up before the answer; the engine's work on it was stopped")
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _start_stream(
    request: Request, gw: Gateway, body: dict[str, Any], charge: _Charge, include_usage: bool,
    started: float,
) -> Response:
    """Wait for the first event before answering, so an engine failure gets a real status."""
    gw.metrics.engine_enter(gw.engine.parallel)
    usage = charge.usage
    events = gw.engine.stream(body, usage, forward_usage=include_usage)

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


def _pack_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def embeddings(request: Request) -> Response:
    gw = _gateway(request)
    sub = subject_of(request)
    began = gw.budget.mark()
    refused = gw.refusal(sub)
    if refused is not None:
        return refused
    body = await _json_body(request, gw)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must be a string or a non-empty list of strings")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise BadRequest(f"'input' holds more than {MAX_EMBEDDING_INPUTS} texts")
    if any(not t.strip() for t in texts):
        raise BadRequest("'input' must not contain empty strings")
    model = body.get("model")
    if model is not None and model != gw.embedder.model:
        return json_error(404, f"embedding model {model!r} not found; this server serves "
                          f"{gw.embedder.model!r}", "invalid_request_error", "model_not_found")
    input_type = body.get("input_type", "passage")
    if input_type not in ("query", "passage"):
        raise BadRequest("'input_type' must be 'query' or 'passage'")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'")
    dims = body.get("dimensions")
    if dims is not None and dims != gw.embedder.dim:
        raise BadRequest(
            f"this model has {gw.embedder.dim} dimensions; 'dimensions' cannot change that")
    started = time.perf_counter()
    vectors = await gw.embedder.embed(texts, is_query=input_type == "query")
    tokens = gw.embedder.count_tokens(texts)
    gw.metrics.embedding_tokens.inc(tokens)
    gw.metrics.embeddings_latency.observe(time.perf_counter() - started)
    gw.budget.charge(sub, tokens, began=began)
    data = [
        {"object": "embedding", "index": i,
         "embedding": _pack_base64(v) if encoding == "base64" else v}
        for i, v in enumerate(vectors)
    ]
    return JSONResponse({"object": "list", "data": data, "model": gw.embedder.model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def models(request: Request) -> Response:
    gw = _gateway(request)
    created = int(gw.started)
    return JSONResponse({"object": "list", "data": [
        {"id": gw.engine.model, "object": "model", "created": created, "owned_by": "charla"},
        {"id": gw.embedder.model, "object": "model", "created": created, "owned_by": "charla"},
    ]})


async def healthz(request: Request) -> Response:
    gw = _gateway(request)
    if await gw.engine.ready():
        return JSONResponse({"status": "ok", "model": gw.engine.model})
    return JSONResponse({"status": "unavailable", "model": gw.engine.model}, status_code=503)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(_gateway(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return json_error(exc.status, exc.message, kind, exc.code,
                      headers={"Retry-After": "5"} if exc.status == 503 else None)


class _CountRequests:
    """ASGI middleware: count answers by route and status without touching bodies."""

    def __init__(self, app: Any, metrics: Metrics, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths  # label by known route only: scanners must not grow the registry

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        scope[DIRECT_SEND] = send  # streamed events skip the wrappers below (EventStream)

        async def record(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.answered(scope["path"] if scope["path"] in self.paths else "other",
                                  status)


def create_app(
    settings: Settings,
    *,
    engine: ChatEngine,
    embedder: Embedder,
    verifier: TokenVerifier,
    metrics: Metrics | None = None,
) -> Starlette:
    """The gateway app; ``engine`` is started and closed with the app's lifespan."""
    metrics = metrics or Metrics()
    gateway = Gateway(
        settings=settings, engine=engine, embedder=embedder, metrics=metrics,
        requests=Quota(settings.rate_limit_storage, settings.model_rate_limit, "charla-ms"),
        budget=Quota(settings.rate_limit_storage, settings.token_budget, "charla-budget"),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        warm = getattr(embedder, "warm", None)
        if warm is not None:
            await warm()
        gateway.started = time.time()
        flusher = asyncio.create_task(gateway.flush_forever())
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await gateway.flush()
            await engine.close()
            close = getattr(embedder, "close", None)
            if close is not None:
                await close()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_CountRequests, metrics=metrics,
                       paths=frozenset(r.path for r in routes)),
            Middleware(AuthenticationMiddleware, backend=BearerTokenBackend(verifier),
                       on_error=auth_error),
        ],
        exception_handlers={
            BadRequest: bad_request,
            EngineError: _engine_error,
            HTTPException: http_error,
            Exception: unexpected,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app

