"""How the client limit is wired onto routes (functions/limit.py ``limit_routes``), on a tiny
app in process with the limit counted in memory: what a request may cost at most, which paths
are not counted, and the routes the wiring refuses. The limit on the real app, over HTTP with
Redis: tests/functions/api/test_rate_limit.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from slowapi.errors import RateLimitExceeded
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from functions.limit import UNIT, limit_routes, make_limiter, rate_limit_exceeded
from shared.http import TokenUser
from shared.jwt_tokens import Claims
from tests.conftest import make_settings
from tests.functions.api.test_rate_limit import RATE, SLACK


class _Sub(AuthenticationBackend):
    """Stands in for the bearer token check: ``X-Sub`` names a verified subject."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        sub = conn.headers.get("x-sub")
        return (AuthCredentials(["authenticated"]), TokenUser(Claims(sub))) if sub else None


async def upload(request: Request) -> Response:
    return JSONResponse({"uploaded": True})


async def page(request: Request) -> Response:
    return JSONResponse({"page": True})


@pytest.fixture
async def tiny() -> AsyncIterator[Callable[[str, list[BaseRoute]], Awaitable[httpx.AsyncClient]]]:
    """An app of the given routes under the client limit, counted in memory, in process."""
    clients: list[httpx.AsyncClient] = []

    async def make(rate: str, routes: list[BaseRoute]) -> httpx.AsyncClient:
        limiter = make_limiter(make_settings(CHARLA_RATE_LIMIT_STORAGE="memory://"))
        app = Starlette(routes=limit_routes(routes, limiter, rate, public=("/",)),
                        middleware=[Middleware(AuthenticationMiddleware, backend=_Sub())],
                        exception_handlers={RateLimitExceeded: rate_limit_exceeded})
        app.state.limiter = limiter
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_no_request_costs_more_than_the_whole_allowance(
    tiny: Callable[[str, list[BaseRoute]], Awaitable[httpx.AsyncClient]]
) -> None:
    # An upload weighs five requests; with two an hour it still passes, and takes them both.
    client = await tiny("2/hour", [Route("/v1/documents", upload, methods=["POST"])])
    first = await client.post("/v1/documents", headers={"X-Sub": "ann"})
    assert first.status_code == 200, first.text
    second = await client.post("/v1/documents", headers={"X-Sub": "ann"})
    assert second.status_code == 429
    assert "(2 per 1 hour)" in second.json()["error"]["message"]
    assert 3599 <= int(second.headers["retry-after"]) <= 3600
    assert (await client.post("/v1/documents", headers={"X-Sub": "bob"})).status_code == 200


async def test_a_public_path_on_a_limited_route_is_not_counted(
    tiny: Callable[[str, list[BaseRoute]], Awaitable[httpx.AsyncClient]]
) -> None:
    client = await tiny("1/hour", [Route("/", page), Route("/pages/{name}", page)])
    for _ in range(UNIT + SLACK + 1):  # no verified token: a public path, whatever its route
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/pages/a")).status_code == 200
    for _ in range(3):  # a public path's own route is not wrapped at all
        assert (await client.get("/", headers={"X-Sub": "cy"})).status_code == 200
    for n in range(UNIT + SLACK):  # with a token, the template's other paths are reads
        assert (await client.get(f"/pages/{n}", headers={"X-Sub": "cy"})).status_code == 200
    assert (await client.get("/pages/a", headers={"X-Sub": "cy"})).status_code == 429


def test_the_wiring_refuses_what_it_cannot_limit() -> None:
    limiter = make_limiter(make_settings(CHARLA_RATE_LIMIT_STORAGE="memory://"))
    with pytest.raises(TypeError, match="only plain routes"):
        limit_routes([Mount("/sub", routes=[])], limiter, RATE, public=())
    with pytest.raises(ValueError, match="share the endpoint name"):
        limit_routes([Route("/a", page), Route("/b", page)], limiter, RATE, public=())

    async def no_request(req: Request) -> Response:
        return JSONResponse({})

    with pytest.raises(Exception, match='No "request"'):
        limit_routes([Route("/c", no_request)], limiter, RATE, public=())
