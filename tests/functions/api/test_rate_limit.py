"""One request allowance per API client across every route that needs a token (slowapi).

The functions app on real HTTP with the real Redis and Postgres, in front of a stand-in model
server on loopback that counts what reaches it (the point of some of these tests is that a
refused request reaches nothing). The allowance is per hour, so no window ends during a test
unless a test ends it.

How the limit is wired onto routes, on an app of a few routes in process:
tests/functions/api/test_rate_limit_wiring.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import redis
from limits import parse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from functions.api.auth import client_signer
from functions.app import PUBLIC_PATHS
from functions.limit import SCOPE, UNIT, in_tenths
from shared.privacy import API_LIMIT_PREFIX
from tests.conftest import Api, ServerThread, api_env, fresh_database, make_settings, start_api

ALLOWANCE = 5
RATE = f"{ALLOWANCE}/hour"
SLACK = UNIT - 1  # tenths a request may go past the allowance: an answer passes while any is left
UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call fails fast
PARAMS = {"document_id": "1", "chunk_id": "1", "job_id": "1", "platform": "api",
          "user": "nobody", "name": "nothing.js"}
ASK = {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 3}


@dataclass
class CountingModelServer:
    """Answers as the model server would, and counts the requests that reach it. A question
    naming a status is answered with that status and a ``Retry-After``."""

    chats: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def models(request: Request) -> Response:
            return JSONResponse({"object": "list", "data": [
                {"id": "counted", "object": "model", "created": 0, "owned_by": "charla"}]})

        async def chat(request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            self.chats.append(body)
            status = re.search(r"status (\d{3})", str(body["messages"]))
            if status:
                return JSONResponse(
                    {"error": {"message": "as asked", "type": "server_error", "code": None}},
                    status_code=int(status.group(1)), headers={"Retry-After": "9"})
            return JSONResponse({
                "id": "chatcmpl-counted", "object": "chat.completion", "created": 0,
                "model": "counted", "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant",
                                                             "content": "Hello."}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

        return Starlette(routes=[Route("/healthz", healthz), Route("/v1/models", models),
                                 Route("/v1/chat/completions", chat, methods=["POST"])])


@dataclass
class Limited:
    api: Api
    model: CountingModelServer
    routes: list[tuple[str, str]]  # every (method, path) the app answers, params filled in

    def headers(self, sub: str, *scopes: str) -> dict[str, str]:
        token = client_signer(self.api.settings).sign(sub, ttl_s=600, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}

    def key(self, sub: str) -> str:
        """The subject's counter in Redis: slowapi's key for the limit every route shares."""
        return "LIMITS:" + in_tenths(parse(RATE)).key_for(API_LIMIT_PREFIX, sub, SCOPE)

    def counter(self, sub: str) -> tuple[int, int]:
        """The subject's count in Redis, in tenths, and the milliseconds its window has left."""
        with redis.Redis.from_url(self.api.settings.rate_limit_storage) as client:
            return int(client.get(self.key(sub)) or 0), int(client.pttl(self.key(sub)))

    def audited(self, sub: str) -> int:
        """How many of the subject's exchanges the audit log holds."""
        assert self.api.settings.database_url is not None
        with psycopg.connect(self.api.settings.database_url.reveal()) as conn:
            row = conn.execute("SELECT count(*) FROM api_exchanges WHERE client = %s",
                               (sub,)).fetchone()
        assert row is not None
        return int(row[0])


def _routes(app: Starlette) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        assert isinstance(route, Route)
        path = route.path.format(**{k: v for k, v in PARAMS.items()
                                    if "{" + k + "}" in route.path})
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[CountingModelServer, str]]:
    model = CountingModelServer()
    server = ServerThread(model.app()).start()
    yield model, server.url
    server.stop()


@pytest.fixture(scope="module")
def database(pg_url: str) -> str:
    return fresh_database(pg_url)


@pytest.fixture(scope="module")
def limited(service_keys: tuple[str, str], upstream: tuple[CountingModelServer, str],
            database: str, redis_url: str) -> Iterator[Limited]:
    settings = make_settings(**api_env(service_keys, upstream[1], database, redis_url,
                                       CHARLA_API_RATE_LIMIT=RATE))
    server = start_api(settings)
    app = server.server.config.app
    assert isinstance(app, Starlette)
    yield Limited(Api(server.url, settings, server), upstream[0], _routes(app))
    server.stop()


def _who() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


def _no_limit_headers(answer: httpx.Response) -> bool:
    """An answer that passed says nothing of the limit: no Retry-After, no X-RateLimit-*."""
    return not [name for name in answer.headers
                if name == "retry-after" or name.startswith("x-ratelimit")]


async def _spend(limited: Limited, http: httpx.AsyncClient, sub: str) -> None:
    """Five answers: all of a 5/hour allowance."""
    for n in range(ALLOWANCE):
        answer = await http.post(limited.api.url + "/v1/chat/completions", json=ASK,
                                 headers=limited.headers(sub))
        assert answer.status_code == 200, (n, answer.text)
        assert _no_limit_headers(answer), answer.headers


async def _exhaust(limited: Limited, http: httpx.AsyncClient, sub: str) -> None:
    """All of it: five answers, then the nine tenths that reads may go past them."""
    await _spend(limited, http, sub)
    for n in range(SLACK):
        read = await http.get(limited.api.url + "/v1/models", headers=limited.headers(sub))
        assert read.status_code == 200, n
    assert limited.counter(sub)[0] == ALLOWANCE * UNIT + SLACK


async def _eventually(check: Callable[[], bool], within_s: float = 5) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the time given"
        await asyncio.sleep(0.05)


async def test_a_spent_allowance_is_refused_on_every_route_that_needs_a_token(
    limited: Limited, http: httpx.AsyncClient
) -> None:
    sub = _who()
    await _exhaust(limited, http, sub)
    await _eventually(lambda: limited.audited(sub) == ALLOWANCE)  # written after each answer
    reached = len(limited.model.chats)
    protected = [(m, p) for m, p in limited.routes if p not in PUBLIC_PATHS]
    assert ("GET", "/v1/collections") in protected and ("DELETE", "/v1/documents/1") in protected
    assert ("GET", "/web/nothing.js") in protected  # the files' route, asked with a token
    assert len(protected) >= 15
    # A window part-way through a second, which Redis's TTL rounds to the nearest one.
    with redis.Redis.from_url(limited.api.settings.rate_limit_storage) as client:
        client.pexpire(limited.key(sub), 3_599_300)
    for method, path in protected:
        _count, before_ms = limited.counter(sub)
        refused = await http.request(
            method, limited.api.url + path, headers=limited.headers(sub, "admin", "documents"),
            json=ASK if method == "POST" else None)
        _count, after_ms = limited.counter(sub)
        assert refused.status_code == 429, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        # In the unit it is configured in, not the tenths it is counted in.
        assert "(5 per 1 hour)" in refused.json()["error"]["message"]
        # A true Retry-After: when the window that refused it ends, never before.
        retry = int(refused.headers["retry-after"])
        assert math.ceil(after_ms / 1000) <= retry <= math.ceil(before_ms / 1000) + 1, path
    # No route answered them: the model server saw none of them, and the audit log holds the
    # five answers only (the refused question would have been written as it was answered).
    another = _who()
    assert (await http.post(limited.api.url + "/v1/chat/completions", json=ASK,
                            headers=limited.headers(another))).status_code == 200
    await _eventually(lambda: limited.audited(another) == 1)  # written by now, were it theirs
    assert len(limited.model.chats) == reached + 1  # another's question only
    assert limited.audited(sub) == ALLOWANCE
    # A path no route serves is not a route to limit.
    missing = await http.get(limited.api.url + "/v1/no-such-route", headers=limited.headers(sub))
    assert missing.status_code == 404


async def test_the_allowance_comes_back_when_the_window_ends(
    limited: Limited, http: httpx.AsyncClient
) -> None:
    sub = _who()
    await _spend(limited, http, sub)
    for _ in range(3):
        refused = await http.post(limited.api.url + "/v1/chat/completions", json=ASK,
                                  headers=limited.headers(sub))
        assert refused.status_code == 429
    # A fixed window counts its refusals too (slowapi): knocking keeps a client refused until
    # the window ends, and no longer. End it now, as Redis does when the window's time is up.
    count, left_ms = limited.counter(sub)
    assert count == (ALLOWANCE + 3) * UNIT and left_ms > 0
    with redis.Redis.from_url(limited.api.settings.rate_limit_storage) as client:
        client.pexpire(limited.key(sub), 100)
    await _eventually(lambda: limited.counter(sub)[0] == 0)
    answer = await http.post(limited.api.url + "/v1/chat/completions", json=ASK,
                             headers=limited.headers(sub))
    assert answer.status_code == 200 and _no_limit_headers(answer)
    assert limited.counter(sub)[0] == UNIT  # a new window, and its whole allowance less one


async def test_the_public_routes_are_not_counted(limited: Limited, http: httpx.AsyncClient
                                                 ) -> None:
    sub = _who()
    await _spend(limited, http, sub)
    for path in ("/healthz", "/", "/admin", "/web/chat.js"):
        answer = await http.get(limited.api.url + path, headers=limited.headers(sub))
        assert answer.status_code == 200, path
        assert _no_limit_headers(answer), path
    for path in ("/slack/events", "/telegram/webhook", "/discord/interactions"):
        webhook = await http.post(limited.api.url + path, content=b"{}",
                                  headers=limited.headers(sub))
        assert webhook.status_code != 429, path  # checked by their platform's signature
    assert limited.counter(sub)[0] == ALLOWANCE * UNIT


async def test_a_read_costs_a_tenth_and_a_question_passes_while_any_is_left(
    limited: Limited, http: httpx.AsyncClient
) -> None:
    async def ask(sub: str) -> int:
        answer = await http.post(limited.api.url + "/v1/chat/completions", json=ASK,
                                 headers=limited.headers(sub))
        return answer.status_code

    async def read(sub: str, times: int) -> None:
        for n in range(times):
            listed = await http.get(limited.api.url + "/v1/models", headers=limited.headers(sub))
            assert listed.status_code == 200, n

    # Four answers, then nine reads: a tenth of the allowance is left, and the last question
    # is answered with it. Then nothing is left: a read is refused.
    sub = _who()
    assert [await ask(sub) for _ in range(ALLOWANCE - 1)] == [200] * (ALLOWANCE - 1)
    await read(sub, UNIT - 1)
    assert await ask(sub) == 200
    refused = await http.get(limited.api.url + "/v1/collections", headers=limited.headers(sub))
    assert refused.status_code == 429
    # Ten reads are a whole answer's worth: after them, the fifth question is refused.
    other = _who()
    assert [await ask(other) for _ in range(ALLOWANCE - 1)] == [200] * (ALLOWANCE - 1)
    await read(other, UNIT)
    assert await ask(other) == 429


async def test_an_answer_that_passes_carries_no_retry_after(
    limited: Limited, http: httpx.AsyncClient
) -> None:
    sub = _who()
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/collections"),
                         ("GET", "/v1/documents"), ("GET", "/v1/admin/health"),
                         ("GET", "/v1/passages/999999999")):
        answer = await http.request(method, limited.api.url + path,
                                    headers=limited.headers(sub, "admin", "documents"))
        assert answer.status_code < 500, (path, answer.text)
        assert _no_limit_headers(answer), (path, answer.headers)


@pytest.mark.parametrize(("status", "relayed", "retry"),
                         [(500, 502, None), (429, 429, "9"), (503, 503, "9")])
async def test_only_a_refusal_or_an_unavailable_model_server_relays_retry_after(
    limited: Limited, http: httpx.AsyncClient, status: int, relayed: int, retry: str | None
) -> None:
    ask = {"messages": [{"role": "user", "content": f"answer with status {status}"}]}
    answer = await http.post(limited.api.url + "/v1/chat/completions", json=ask,
                             headers=limited.headers(_who()))
    assert answer.status_code == relayed
    assert answer.headers.get("retry-after") == retry


@pytest.mark.parametrize(("method", "path", "body", "tenths"), [
    ("POST", "/v1/moderations", {"input": "Hello there."}, UNIT),
    ("POST", "/v1/documents?collection=notes&name=a.md", b"# A\n\nText.\n", 5 * UNIT),
    ("DELETE", "/v1/documents/999999999", None, 1),
    ("GET", "/v1/admin/usage", None, 1),
])
async def test_what_each_route_costs(limited: Limited, http: httpx.AsyncClient, method: str,
                                     path: str, body: Any, tenths: int) -> None:
    sub = _who()
    answer = await http.request(
        method, limited.api.url + path, headers=limited.headers(sub, "admin", "documents"),
        **({"json": body} if isinstance(body, dict) else {"content": body}))
    assert answer.status_code not in (429, 500), answer.text  # whatever the route says
    assert limited.counter(sub)[0] == tenths


@pytest.fixture(scope="module")
def without_redis(service_keys: tuple[str, str], upstream: tuple[CountingModelServer, str],
                  database: str) -> Iterator[Api]:
    """The app with its limit storage gone: nothing listens where Redis should be."""
    settings = make_settings(**api_env(service_keys, upstream[1], database, UNREACHABLE,
                                       CHARLA_API_RATE_LIMIT=RATE))
    server = start_api(settings)
    yield Api(server.url, settings, server)
    server.stop()


async def test_without_redis_the_limit_is_counted_in_process_with_one_warning(
    without_redis: Api, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    sub = _who()
    with caplog.at_level(logging.WARNING):
        for n in range(ALLOWANCE):
            answer = await http.post(without_redis.url + "/v1/chat/completions", json=ASK,
                                     headers=without_redis.headers(sub))
            assert answer.status_code == 200, (n, answer.text)
        for _ in range(2):
            refused = await http.post(without_redis.url + "/v1/chat/completions", json=ASK,
                                      headers=without_redis.headers(sub))
            assert refused.status_code == 429, refused.text
            assert 3590 <= int(refused.headers["retry-after"]) <= 3600  # counted in memory
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1, [r.getMessage() for r in unreachable]
    # Each refusal is one short WARNING line; nothing worse, and no traceback anywhere.
    assert not [r for r in caplog.records if r.exc_info or r.levelno > logging.WARNING]
    assert "Traceback" not in caplog.text
