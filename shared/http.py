"""HTTP pieces both Starlette apps use: bearer-JWT authentication, bounded bodies, JSON errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from shared.errors import BadRequest, CharlaError, InvalidToken
from shared.openai_schema import error_body

if TYPE_CHECKING:  # PyJWT stays out of the webhook functions, which only need json_error
    from shared.jwt_tokens import Claims, TokenVerifier

log = logging.getLogger(__name__)


class TokenUser(BaseUser):
    """The holder of a verified token."""

    def __init__(self, claims: Claims) -> None:
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.claims.sub

    @property
    def identity(self) -> str:
        return self.claims.sub


class BearerTokenBackend(AuthenticationBackend):
    """``Authorization: Bearer <JWT>`` on every path except the public ones."""

    def __init__(self, verifier: TokenVerifier, public_paths: Iterable[str] = ("/healthz",)):
        self._verifier = verifier
        self._public = frozenset(public_paths)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if conn.scope["type"] != "http" or conn.scope["path"] in self._public:
            return None
        header = conn.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing bearer token")
        try:
            if self._verifier.does_io:
                claims = await asyncio.to_thread(self._verifier.verify, token.strip())
            else:
                claims = self._verifier.verify(token.strip())
        except InvalidToken as exc:
            raise AuthenticationError(str(exc)) from None
        return AuthCredentials(["authenticated", *sorted(claims.scopes)]), TokenUser(claims)


def auth_error(conn: HTTPConnection, exc: AuthenticationError) -> JSONResponse:
    """401 in OpenAI's error shape, with the reason (never the token)."""
    return JSONResponse(
        error_body(str(exc) or "unauthorized", "invalid_request_error", "invalid_api_key"),
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="charla"'},
    )


def json_error(status: int, message: str, kind: str, code: str | None = None,
               headers: dict[str, str] | None = None, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code, param), status_code=status,
                        headers=headers)


class BodyTooLarge(BadRequest):
    """The request body is over the configured limit (413)."""


class BodyTimeout(BadRequest):
    """The request body did not arrive within the deadline (408, and the connection closed)."""


class BodyAbandoned(BadRequest):
    """The client hung up before its whole body arrived: nobody is left to answer."""


async def read_body(request: Request, limit: int, *, timeout_s: float) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading it all first, and
    giving up on a body not whole within ``timeout_s`` seconds (CHARLA_BODY_TIMEOUT).

    Without the deadline a client that sends its headers and then nothing, or a byte at a time,
    holds a connection for as long as it likes. Under Mangum (Lambda) the whole body comes in
    the first message, without a wait, so the deadline is always met there.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(f"the request body is over the {limit}-byte limit")
        except ValueError:
            raise BadRequest("malformed Content-Length header") from None
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            # A chunked body declares no length: counted as it comes.
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"the request body is over the {limit}-byte limit")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise BodyAbandoned("the client left before sending its whole body") from None
    return b"".join(chunks)


T = TypeVar("T")


class ClientLeft(CharlaError):
    """The caller hung up before its answer was ready."""


# The status counted for a caller that hung up (nobody reads it): nginx's "client closed request".
CLIENT_CLOSED_REQUEST = 499


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, awaited in this task; :class:`ClientLeft` when the client hangs up
    first, after cancelling ``work`` (which drops its connection upstream, and the engine at
    the end of it stops: llama-server notices within a second, streamed or not).

    The body has been read, so the next ASGI message is ``http.disconnect``: uvicorn sends it
    when the connection closes, httpx's ASGITransport once the response is complete. A watcher
    waits on ``receive`` and cancels this task when it comes; one task per request, where
    running ``work`` in a task of its own would take two.
    """
    task = asyncio.current_task()
    assert task is not None
    left = False

    async def watch() -> None:
        nonlocal left
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        except (RuntimeError, OSError):  # a server that cannot say: the answer is awaited
            return
        left = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        # Ours only if nobody else cancelled the task too (a server shutting down).
        if left and task.uncancel() == 0:
            raise ClientLeft from None
        raise
    finally:
        watcher.cancel()


def subject_of(request: Request) -> str:
    """The verified token's subject: the key for every per-user limit."""
    user = request.scope.get("user")
    if isinstance(user, TokenUser):
        return user.claims.sub
    return "anonymous"


# Exception handlers every Starlette app of the functions shares (the local app and each
# Lambda function's): a short JSON error, never a traceback.

async def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if isinstance(exc, BodyAbandoned):
        # Anyone can do this, as often as they like: one short line, no traceback.
        log.info("%s %s: the client left before its body arrived", request.method,
                 request.scope["path"])
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if isinstance(exc, BodyTimeout):
        log.info("%s %s: the body did not arrive in time; 408", request.method,
                 request.scope["path"])
        # The connection closes after it (RFC 9110, 408): the rest is not waited for.
        return json_error(408, str(exc), "invalid_request_error", "request_timeout",
                          headers={"Connection": "close"})
    status = 413 if isinstance(exc, BodyTooLarge) else 400
    return json_error(status, str(exc), "invalid_request_error", param=exc.param)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, str(exc.detail), "invalid_request_error")


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return json_error(500, "internal error", "server_error")


Handler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handlers(own: Mapping[type[Exception], Handler]) -> dict[Any, Handler]:
    """An app's exception handlers: its ``own``, for the errors of its layer, within the ones
    every Charla app has (400 or 413 for a bad request, Starlette's HTTP errors as JSON, and a
    500 without a traceback for anything else, logged here)."""
    return {BadRequest: bad_request, **own, HTTPException: http_error, Exception: unexpected}
