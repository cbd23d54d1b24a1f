"""Answers from the knowledge base for API clients, and the routes that show where they came from.

A client (principal ``api:<sub>``) granted collections gets answers drawn from them, like the
bots: the last user message is looked up, the relevant passages go into the prompt as the
answer pipeline lays them out for every door (functions/pipeline.py), and the answer carries
``citations``. With nothing relevant in
those collections the answer is "I don't know", without asking the model. A request may narrow
the search (``"collections": ["hr"]``) or switch it off (``"collections": []``); naming a
collection the client may not read is a 403, never a silent fallback, and the same 403 for
one that does not exist (nothing says which); a name that breaks the naming rule is a 400.

``GET /v1/collections`` lists what the caller may read, ``GET /v1/passages/{id}`` shows one
cited passage to a caller who may read its collection.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions.pipeline import Found
from functions.quotes import supporting
from shared.chat import Message
from shared.errors import BadRequest, CharlaError, StorageError
from shared.http import json_error, subject_of
from shared.knowledge.search import Passage
from shared.openai_schema import ChatRequest

log = logging.getLogger(__name__)

PASSAGE_ROUTE = "/v1/passages/{}"


class NotReadable(CharlaError):
    """A request named collections its client may not read."""


def citations(passages: Sequence[Passage], answer: str = "", question: str = ""
              ) -> list[dict[str, Any]]:
    """One citation per passage; given the ``answer`` (and its ``question``), each with
    ``quote``: the sentence of the passage that best supports it (None where none does)."""
    return [{"n": n, "chunk_id": p.chunk_id, "document_id": p.document_id,
             "collection": p.collection, "source": p.source, "title": p.title,
             "section": p.heading, "page": p.page,
             "url": PASSAGE_ROUTE.format(p.chunk_id),
             "quote": supporting(answer, question, p) if answer or question else None}
            for n, p in enumerate(passages, start=1)]


def _question(messages: list[Message]) -> str | None:
    last = messages[-1] if messages else None
    if last is None or last["role"] != "user" or not str(last["content"]).strip():
        return None
    return str(last["content"])


async def ground(request: Request, chat: ChatRequest) -> Found | None:
    """Look the question up in the collections this client may read (None: nothing to do).

    Collections named in the request are checked against the client's grants whenever they
    are named, question or not: :class:`NotReadable` for any it may not read, the same for
    one that exists and one that does not."""
    ctx = request.app.state.api
    kb = ctx.knowledge
    question = _question(chat.messages)
    if kb is None or chat.collections == [] or (question is None and not chat.collections):
        return None
    principal = f"api:{subject_of(request)}"
    try:
        readable = await kb.store.readable([principal])
    except StorageError:
        if chat.collections:
            raise  # asked for documents by name: a 503 says more than an answer without them
        # The database is down (a restart): the model still answers, without documents, and
        # says so in a header, as the audit log is skipped while it is away.
        log.warning("knowledge base unavailable; answering without documents")
        request.state.knowledge = "unavailable"
        return None
    if chat.collections is not None:
        names = {c.name for c in readable}
        refused = sorted(set(chat.collections) - names)
        if refused:
            raise NotReadable(f"this client may not read {', '.join(map(repr, refused))}")
        readable = [c for c in readable if c.name in chat.collections]
    if not readable or question is None:
        return None
    query = await kb.query_vector(question, sub=principal)
    found = await kb.search_in(readable, question, query)
    return Found([c.name for c in found.collections], found.passages)


async def not_readable(request: Request, exc: Exception) -> Response:
    return json_error(403, str(exc), "permission_error", "collection_not_granted",
                      param="collections")


def dont_know_answer(text: str, chat: ChatRequest, model: str,
                     cited: list[dict[str, Any]] | None = None, *,
                     refusal: bool = False) -> Response:
    """The "I don't know" answer, ``text``, whole or streamed, in OpenAI's shapes, with the
    closest sources ``cited`` (none when nothing was relevant); ``refusal``: a JSON answer's,
    which OpenAI's shape gives as ``refusal`` (no content that could break its schema)."""
    cited = cited or []
    said = {"content": None, "refusal": text} if refusal else {"content": text}
    ident = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not chat.stream:
        return JSONResponse({
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", **said},
                         "finish_reason": "stop"}],
            "usage": usage, "citations": cited})

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": choices, **extra}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        yield chunk([{"index": 0, "delta": {"role": "assistant", **said},
                      "finish_reason": None}])
        yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], citations=cited)
        if chat.include_usage:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


def with_citations(events: bytes, citations: list[dict[str, Any]]) -> bytes:
    """``events`` (whole server-sent events) with ``citations`` added to the chunk that carries
    the finish reason: a streamed grounded answer's citations ride on its last choice chunk,
    since clients read ``chunk.choices[0]`` of every chunk but the usage one, and ignore fields
    they do not know."""
    parts = events.split(b"\n\n")
    for i, event in enumerate(parts):
        payload = event.strip().removeprefix(b"data:").strip()
        if not payload.startswith(b"{") or b"finish_reason" not in payload:
            continue
        try:
            body = json.loads(payload)
        except ValueError:
            continue
        if any(isinstance(c, dict) and c.get("finish_reason") for c in body.get("choices") or []):
            body["citations"] = citations
            parts[i] = b"data: " + json.dumps(body).encode()
            return b"\n\n".join(parts)
    return events


def fact_check_field(unsupported: Sequence[str]) -> dict[str, Any]:
    """What a replaced answer carries besides its text: it was replaced, and which of what
    the model wrote the passages do not state."""
    return {"replaced": True, "unsupported": list(unsupported)}


def ended_events(ident: str | None, model: str, citations: list[dict[str, Any]] | None,
                 usage: dict[str, Any] | None) -> bytes:
    """The end of a stream the checks cut short (an answer that looped): a chunk that
    finishes it, with the citations of a grounded answer, the usage chunk when asked for,
    ``[DONE]``."""
    ident = ident or f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    body: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                            "model": model,
                            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if citations is not None:
        body["citations"] = citations
    return _closing(body, ident, created, model, usage)


def _closing(body: dict[str, Any], ident: str, created: int, model: str,
             usage: dict[str, Any] | None) -> bytes:
    out = b"data: " + json.dumps(body).encode() + b"\n\n"
    if usage is not None:
        out += b"data: " + json.dumps({"id": ident, "object": "chat.completion.chunk",
                                        "created": created, "model": model, "choices": [],
                                        "usage": usage}).encode() + b"\n\n"
    return out + b"data: [DONE]\n\n"


def replaced_events(ident: str | None, model: str, text: str, citations: list[dict[str, Any]],
                    unsupported: Sequence[str], usage: dict[str, Any] | None, *,
                    refusal: bool = False) -> bytes:
    """The end of a stream whose answer stated a fact its passages do not: ``text`` (what
    is shown instead, or added to the sentences already sent; ``refusal``: a JSON answer's
    refusal) on a chunk that finishes the answer with its citations and ``fact_check``, the
    usage chunk when asked for, ``[DONE]``."""
    ident = ident or f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant",
                                               "refusal" if refusal else "content": text},
                         "finish_reason": "stop"}],
            "citations": citations, "fact_check": fact_check_field(unsupported)}
    return _closing(body, ident, created, model, usage)


async def list_collections(request: Request) -> Response:
    """The collections the caller may read, with counts."""
    kb = request.app.state.api.knowledge
    if kb is None:
        return JSONResponse({"object": "list", "data": []})
    readable = {c.name for c in await kb.store.readable([f"api:{subject_of(request)}"])}
    return JSONResponse({"object": "list", "data": [
        {"name": c.name, "documents": c.documents, "chunks": c.chunks,
         "embedding_model": c.embedding_model}
        for c in await kb.store.collections() if c.name in readable]})


async def show_passage(request: Request) -> Response:
    """One cited passage, to a caller who may read its collection (404 otherwise: no hint
    that it exists)."""
    kb = request.app.state.api.knowledge
    try:
        chunk_id = int(request.path_params["chunk_id"])
    except ValueError:
        raise BadRequest("a passage id is a number") from None
    # The grant is checked in the same query that reads the passage.
    passage = await kb.store.passage(chunk_id, readers=[f"api:{subject_of(request)}"]
                                     ) if kb is not None else None
    if passage is not None:
        return JSONResponse(passage)
    return json_error(404, f"no passage {chunk_id}", "invalid_request_error",
                      "passage_not_found")
