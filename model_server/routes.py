"""The gateway's routes: the table :func:`routes`, and all but the chat route, which has
:mod:`model_server.completions` to itself.

Embeddings are limited and charged like chats, but in one step: the embedder always reports how
many tokens it read. ``/v1/models``, ``/healthz`` and ``/metrics`` read the gateway's state
and charge nothing.
"""

from __future__ import annotations

import base64
import struct
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_server.completions import chat_completions
from model_server.gateway import gateway_of, json_body
from shared.embeddings_schema import parse_embeddings_request
from shared.http import json_error, subject_of


def routes() -> list[Route]:
    """Every route the gateway serves; all but ``/healthz`` need a service token."""
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


def _pack_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def embeddings(request: Request) -> Response:
    gw = gateway_of(request)
    sub = subject_of(request)
    began = gw.budget.mark()
    refused = gw.refusal(sub)
    if refused is not None:
        return refused
    asked = parse_embeddings_request(await json_body(request, gw), dim=gw.embedder.dim)
    texts, model, encoding = asked.texts, asked.model, asked.encoding_format
    if model is not None and model != gw.embedder.model:
        return json_error(404, f"embedding model {model!r} not found; this server serves "
                          f"{gw.embedder.model!r}", "invalid_request_error", "model_not_found")
    input_type = asked.input_type
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
    gw = gateway_of(request)
    created = int(gw.started)
    return JSONResponse({"object": "list", "data": [
        {"id": gw.engine.model, "object": "model", "created": created, "owned_by": "charla"},
        {"id": gw.embedder.model, "object": "model", "created": created, "owned_by": "charla"},
    ]})


async def healthz(request: Request) -> Response:
    gw = gateway_of(request)
    if await gw.engine.ready():
        return JSONResponse({"status": "ok", "model": gw.engine.model})
    return JSONResponse({"status": "unavailable", "model": gw.engine.model}, status_code=503)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(gateway_of(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
