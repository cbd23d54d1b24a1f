"""``POST /v1/moderations`` in OpenAI's shape, and the API's answers to a tripped check.

A client program checks text against the same policy (and guard model) its chat requests go
through: ``{"input": "text" | ["text", ...], "model": optional}`` gives
``{"id", "model", "results": [{"flagged", "categories", "category_scores"}]}``, one result per
text. The categories are OpenAI's names plus the policy's own; a policy match is certain, so
its score is 1.0 (0.0 otherwise). Nothing is recorded: checking is not withholding.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.moderation import Judgement, Trip
from shared.errors import BadRequest
from shared.http import json_error, read_body, subject_of
from shared.openai_schema import parse_json_object

MAX_INPUTS = 64
OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
CONTENT_FILTER = "content_filter"


def _inputs(value: Any) -> list[str]:
    """``input`` as a list of texts: a string, a list of strings, or OpenAI's list of
    ``{"type": "text", "text": ...}`` parts (images are not supported)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise BadRequest("'input' must be a string or a non-empty list of strings")
    if len(value) > MAX_INPUTS:
        raise BadRequest(f"'input' holds more than {MAX_INPUTS} items")
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, dict) and item.get("type") == "text":
            item = item.get("text")
        if not isinstance(item, str):
            raise BadRequest(f"input[{i}] must be a string (only text is supported)")
        texts.append(item)
    return texts


def _result(judgement: Judgement) -> dict[str, Any]:
    names = dict.fromkeys((*OPENAI_CATEGORIES, *judgement.known))
    flagged = set(judgement.categories)
    return {"flagged": bool(flagged),
            "categories": {name: name in flagged for name in names},
            "category_scores": {name: 1.0 if name in flagged else 0.0 for name in names}}


async def create_moderation(request: Request) -> Response:
    ctx = request.app.state.api
    body = parse_json_object(await read_body(request, ctx.settings.max_body_bytes,
                                             timeout_s=ctx.settings.body_timeout_s))
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    texts = _inputs(body.get("input"))
    principal = f"api:{subject_of(request)}"
    scopes = await ctx.moderation.scopes([principal])
    results = [_result(await ctx.moderation.judge(text, scopes, sub=principal))
               for text in texts]
    return JSONResponse({"id": f"modr-{uuid.uuid4().hex}", "model": ctx.moderation.model_name,
                         "results": results})


# What a chat request gets when a check trips.

def input_refused(trip: Trip) -> Response:
    """400, with the code OpenAI's clients know from content filters."""
    return json_error(400, "the request was withheld by the content policy "
                      f"({', '.join(trip.categories)})", "invalid_request_error", CONTENT_FILTER)


def stream_id(first: bytes) -> str | None:
    """The ``id`` of a streamed answer, from its first event."""
    for line in first.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                value = json.loads(line[5:]).get("id")
            except (ValueError, AttributeError):
                return None
            return value if isinstance(value, str) else None
    return None


def content_filter_events(ident: str | None, model: str, refusal: str | None) -> bytes:
    """The end of a stream cut by a check: a chunk with ``finish_reason: content_filter``
    (carrying ``refusal`` when the client has been sent nothing yet), then ``[DONE]``."""
    delta = {"role": "assistant", "content": refusal} if refusal else {}
    body = {"id": ident or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": CONTENT_FILTER}]}
    return b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"
