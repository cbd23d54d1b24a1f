"""``/v1/documents``: the knowledge base over HTTP, for programs (a CI job publishing docs).

``POST /v1/documents?collection=hr&name=handbook.pdf`` with the file itself as the body (any
Content-Type: the name's extension decides how it is read), ``GET /v1/documents[?collection=]``,
``DELETE /v1/documents/{id}``. Writing needs a token with the ``documents`` scope
(``charla token --sub ci --scope documents``). Errors: 400 without a collection or a name,
403 without the scope, 413 over ``CHARLA_KB_MAX_UPLOAD_BYTES``, 415 for a type we cannot read,
422 for a file that cannot be read (a broken PDF); nothing of a refused file is kept.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.routes import ApiContext
from functions.knowledge import Knowledge
from shared.errors import BadRequest
from shared.http import json_error, read_body, subject_of
from shared.knowledge.store import KnowledgeError

SCOPE = "documents"
_NAME = re.compile(r"^[^\x00-\x1f/\\]{1,200}$")


def _knowledge(request: Request) -> tuple[ApiContext, Knowledge]:
    ctx: ApiContext = request.app.state.api
    if ctx.knowledge is None:
        raise BadRequest("the knowledge base needs a database (DATABASE_URL)")
    return ctx, ctx.knowledge


def _forbidden() -> Response:
    return json_error(403, f"this token lacks the {SCOPE!r} scope "
                      f"(charla token --sub NAME --scope {SCOPE})", "permission_error",
                      "insufficient_scope")


async def upload(request: Request) -> Response:
    ctx, kb = _knowledge(request)
    if SCOPE not in request.auth.scopes:
        return _forbidden()
    collection = request.query_params.get("collection", "")
    name = request.query_params.get("name", "")
    if not collection or not name:
        raise BadRequest("give ?collection=NAME&name=FILE.ext (the file goes in the body)")
    if not _NAME.match(name):
        raise BadRequest("'name' must be a file name, not a path")
    from shared.knowledge.parse import SUPPORTED  # the readers load only when a file comes

    if not any(name.lower().endswith(ext) for ext in SUPPORTED):
        return json_error(415, f"{name}: unsupported type; send one of "
                          f"{', '.join(SUPPORTED)}", "invalid_request_error",
                          "unsupported_media_type")
    data = await read_body(request, ctx.settings.kb_max_upload_bytes)
    if not data:
        raise BadRequest("the body is empty: send the file's bytes")
    ingestor = kb.ingestor(f"api:{subject_of(request)}")
    try:
        target = await ingestor.collection(collection)
    except KnowledgeError as exc:
        raise BadRequest(str(exc)) from None
    known = (await kb.store.hashes(target)).get(name)
    outcome = await ingestor.ingest_one(target, name, data, known)
    if outcome.status == "failed":
        return json_error(422, f"{name}: {outcome.error}", "invalid_request_error",
                          "unreadable_document")
    document_id = outcome.document_id
    if document_id is None:  # unchanged: same bytes as stored
        document_id = next(d.id for d in await kb.store.documents(target.name)
                           if d.source == name)
    return JSONResponse({"id": document_id, "collection": target.name, "name": name,
                         "status": outcome.status, "chunks": outcome.chunks},
                        status_code=201 if outcome.status == "added" else 200)


async def listing(request: Request) -> Response:
    _, kb = _knowledge(request)
    if SCOPE not in request.auth.scopes:
        return _forbidden()
    documents = await kb.store.documents(request.query_params.get("collection") or None)
    return JSONResponse({"object": "list", "data": [
        {"id": d.id, "collection": d.collection, "name": d.source, "title": d.title,
         "media_type": d.media_type, "bytes": d.bytes, "chunks": d.chunks} for d in documents]})


async def delete(request: Request) -> Response:
    _, kb = _knowledge(request)
    if SCOPE not in request.auth.scopes:
        return _forbidden()
    try:
        document_id = int(request.path_params["document_id"])
    except ValueError:
        raise BadRequest("a document id is a number") from None
    if not await kb.store.delete_document(document_id):
        return json_error(404, f"no document {document_id}", "invalid_request_error",
                          "document_not_found")
    return Response(status_code=204)
