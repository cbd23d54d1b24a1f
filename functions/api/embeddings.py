"""``POST /v1/embeddings``: OpenAI's embeddings, for a client's own search and RAG frameworks.

The texts go to the model server's embedder as the client (``sub = api:<client>``), so they
are counted against the client's request limit here and charged to its token budget there,
like its chats. As with chat, one model answers whatever ``model`` a client names (OpenAI's
clients send ``text-embedding-3-small`` and the like); the answer's ``model`` says which.
OpenAI's clients send no ``input_type``: the texts are embedded as queries then, which e5
recommends for texts compared with each other (Charla's ``input_type: "passage"`` embeds
documents to be searched, as its own knowledge base does).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.routes import ApiContext
from shared.embeddings_schema import DIMENSIONS, parse_embeddings_request
from shared.http import read_body, subject_of
from shared.openai_schema import parse_json_object


async def create_embeddings(request: Request) -> Response:
    ctx: ApiContext = request.app.state.api
    settings = ctx.settings
    body = parse_json_object(await read_body(request, settings.max_body_bytes,
                                             timeout_s=settings.body_timeout_s))
    asked = parse_embeddings_request(body, dim=DIMENSIONS, default_input_type="query")
    answer = await ctx.model.embeddings(
        {"input": asked.texts, "input_type": asked.input_type,
         "encoding_format": asked.encoding_format}, sub=f"api:{subject_of(request)}")
    return JSONResponse(answer)
