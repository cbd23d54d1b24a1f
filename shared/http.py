"""HTTP pieces both Starlette apps use: bearer-JWT authentication, bounded bodies, JSON errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from shared.errors import BadRequest, InvalidToken
from shared.openai_schema import error_body

if TYPE_CHECKING:  # PyJWT stays out of the webhook functions, which only need json_error
    from shared.tokens import Claims, TokenVerifier

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
               headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code), status_code=status, headers=headers)


class BodyTooLarge(BadRequest):
    """The request body is over the configured limit (413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading it all first."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(f"the request body is over the {limit}-byte limit")
        except ValueError:
            raise BadRequest("malformed Content-Length header") from None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def subject_of(request: Request) -> str:
    """The verified token's subject: the key for every per-user limit."""
    user = request.scope.get("user")
    if isinstance(user, TokenUser):
        return user.claims.sub
    return "anonymous"


# Exception handlers every Starlette app of the functions shares (the local app and each
# Lambda function's): a short JSON error, never a traceback.

async def bad_request(request: Request, exc: Exception) -> JSONResponse:
    status = 413 if isinstance(exc, BodyTooLarge) else 400
    return json_error(status, str(exc), "invalid_request_error")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, str(exc.detail), "invalid_request_error")


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return json_error(500, "internal error", "server_error")


# Where an app's outermost own middleware leaves the ``send`` it was given (see EventStream).
DIRECT_SEND = "charla.direct_send"


class EventStream(Response):
    """A ``text/event-stream`` answer whose events skip the middleware ``send`` wrappers.

    Starlette wraps ``send`` once per layer (exception handlers at app and route, each
    middleware) to see when a response starts. Every wrapper is a coroutine call per message,
    and a stream sends one message per token, on the model host next to an engine that wants
    every cycle. So the start goes down the whole chain (the wrappers see the status, as for
    any response) and the events go to the ``send`` that the app's outermost own middleware
    left in the scope under :data:`DIRECT_SEND`, when it did.

    As Starlette's ``StreamingResponse``, it stops iterating when the client disconnects.
    """

    def __init__(self, events: AsyncIterator[bytes],
                 headers: Mapping[str, str] | None = None) -> None:
        # Not Response.__init__: there is no body to render (as in StreamingResponse).
        self.events = events
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                             for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.raw_headers})
        direct: Send = scope.get(DIRECT_SEND, send)
        streaming = asyncio.current_task()
        assert streaming is not None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            streaming.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            async for event in self.events:
                await direct({"type": "http.response.body", "body": event, "more_body": True})
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # cancelled from outside, not by a disconnect
            streaming.uncancel()
            return
        finally:
            watcher.cancel()
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
