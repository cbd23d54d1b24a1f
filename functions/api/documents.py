"""``/v1/documents``: the knowledge base over HTTP, for programs (a CI job publishing docs).

``POST /v1/documents?collection=hr&name=handbook.pdf`` with the file itself as the body (any
Content-Type: the name's extension decides how it is read), ``GET /v1/documents[?collection=]``,
``DELETE /v1/documents/{id}``. Every route needs a token with the ``documents`` scope
(``charla token --sub ci --scope documents``), and then a grant on the collection for what it
does: reading lists, writing (``charla grant hr api:ci --write``) uploads and deletes. A
program cannot create a collection: the operator does, with that grant (a name taken over
HTTP first would otherwise hand the documents the operator adds later to whoever took it).

Nothing says whether a collection or document the client may not touch exists: a named
collection it may not read or write is a 403 ``collection_not_granted``, whether it exists or
not (as in chat requests); a document id it may not delete is a 404, as for one that never
existed. Errors: 400 without a collection or a name, or with a collection name that breaks
the rule (shared/knowledge/names.py), 403 without the scope, 413 over
``CHARLA_KB_MAX_UPLOAD_BYTES``, 415 for a type we cannot read, 422 for a file that cannot be
read (a broken PDF); nothing of a refused file is kept.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.routes import ApiContext
from functions.knowledge import Knowledge
from shared.errors import BadRequest
from shared.http import BodyTooLarge, json_error, read_body, subject_of
from shared.knowledge.names import collection_name
from shared.knowledge.store import KnowledgeError, NotGranted, check_model

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


def _not_granted(request: Request, collection: str, write: bool) -> Response:
    """The same answer for a collection that exists and one that does not."""
    client = subject_of(request)
    verb, flag = ("write to", " --write") if write else ("read", "")
    return json_error(403, f"this client may not {verb} {collection!r} (the operator grants "
                      f"it: charla grant {collection} api:{client}{flag})", "permission_error",
                      "collection_not_granted", param="collection")


async def upload(request: Request) -> Response:
    ctx, kb = _knowledge(request)
    if SCOPE not in request.auth.scopes:
        return _forbidden()
    collection = request.query_params.get("collection", "")
    name = request.query_params.get("name", "")
    if not collection or not name:
        raise BadRequest("give ?collection=NAME&name=FILE.ext (the file goes in the body)")
    collection_name(collection)
    if not _NAME.match(name):
        raise BadRequest("'name' must be a file name, not a path")
    from shared.knowledge.parse import SUPPORTED  # the readers load only when a file comes

    if not any(name.lower().endswith(ext) for ext in SUPPORTED):
        return json_error(415, f"{name}: unsupported type; send one of "
                          f"{', '.join(SUPPORTED)}", "invalid_request_error",
                          "unsupported_media_type")
    writers = [f"api:{subject_of(request)}"]
    # Before the body is read: a refused client does not get to send 20 MB first.
    target = await kb.store.writable(collection, writers)
    if target is None:
        return _not_granted(request, collection, write=True)
    try:
        data = await read_body(request, ctx.settings.kb_max_upload_bytes,
                               timeout_s=ctx.settings.body_timeout_s)
    except BodyTooLarge as exc:
        raise BodyTooLarge(f"{exc} for a document here (CHARLA_KB_MAX_UPLOAD_BYTES); add a "
                           "larger file with `charla ingest FILE --collection "
                           f"{collection}` on a host that reaches the database") from None
    if not data:
        raise BadRequest("the body is empty: send the file's bytes")
    ingestor = kb.ingestor(writers[0], writers=writers)
    known = (await kb.store.hashes(target)).get(name)
    try:
        check_model(target, *await ingestor.model())  # before any work: says to reindex
        outcome = await ingestor.ingest_one(target, name, data, known)
    except NotGranted:  # revoked while the file was being embedded
        return _not_granted(request, collection, write=True)
    except KnowledgeError as exc:
        raise BadRequest(str(exc)) from None
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
    """The documents of the collections the client may read (or of the one it names)."""
    _, kb = _knowledge(request)
    if SCOPE not in request.auth.scopes:
        return _forbidden()
    readers = [f"api:{subject_of(request)}"]
    collection = request.query_params.get("collection") or None
    if collection is not None:
        collection_name(collection)
        if collection not in {c.name for c in await kb.store.readable(readers)}:
            return _not_granted(request, collection, write=False)
    documents = await kb.store.documents(collection, readers=readers)
    return JSONResponse({"object": "list", "data": [
        {"id": d.id, "collection": d.collection, "name": d.source, "title": d.title,
         "media_type": d.media_type, "bytes": d.bytes, "chunks": d.chunks} for d in documents]})


async def delete(request: Request) -> Response:
    """Delete a document of a collection the client may write to; 404 for any other."""
    _, kb = _knowledge(request)
    if SCOPE not in request.auth.scopes:
        return _forbidden()
    try:
        document_id = int(request.path_params["document_id"])
    except ValueError:
        raise BadRequest("a document id is a number") from None
    if not await kb.store.delete_document(document_id,
                                          writers=[f"api:{subject_of(request)}"]):
        return json_error(404, f"no document {document_id}", "invalid_request_error",
                          "document_not_found")
    return Response(status_code=204)
