"""HTTP pieces both Starlette apps use: bearer-JWT authentication, bounded bodies, JSON errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

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
               headers: dict[str, str] | None = None, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code, param), status_code=status,
                        headers=headers)


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
    assert isinstance(exc, BadRequest)
    status = 413 if isinstance(exc, BodyTooLarge) else 400
    return json_error(status, str(exc), "invalid_request_error", param=exc.param)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, str(exc.detail), "invalid_request_error")


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return json_error(500, "internal error", "server_error")
