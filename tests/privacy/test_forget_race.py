"""Forgetting someone leaves no rate-limit counter, whatever a gateway still holds for them.

The gateway counts requests and tokens in memory and writes them every half second
(shared/ratelimit.py, Quota), in a process of its own; forget runs in another (the admin route,
the worker, the CLI). Each Quota below stands for a gateway process on the shared Redis, and
the gateway tests drive a real gateway whose upstream engine answers only when told to: the
order of events is forced, never timed.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_server.app import Gateway
from model_server.main import create
from shared.jwt_tokens import TokenSigner
from shared.privacy import Counters, Person
from shared.ratelimit import FORGETS_KEY, Quota
from tests.conftest import ServerThread, gateway_env, make_settings


def person() -> Person:
    return Person("api", f"erin-{uuid.uuid4().hex[:8]}")


def quota(redis_url: str, prefix: str, rate: str = "100/minute") -> Quota:
    return Quota(redis_url, rate, prefix, clock=lambda: 1000.0)


def stored(redis_url: str, who: Person) -> list[str]:
    """Every key in Redis that names ``who``, however it was written."""
    client = redis.Redis.from_url(redis_url)
    with client:
        return sorted(k.decode() for k in client.scan_iter(match=f"*{who.id}*", count=500))


def test_charges_pending_in_two_gateways_are_not_written_back_after_a_forget(
    redis_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    erin, counters = person(), Counters(redis_url)
    requests = quota(redis_url, f"test-ms-{tag}")
    budget = quota(redis_url, f"test-budget-{tag}", "100000/day")
    other_gateway = quota(redis_url, f"test-ms-{tag}")
    assert requests.take(erin.sub) is None  # checked and counted in the storage at once
    budget.charge(erin.sub, 420)  # charged in memory, not yet written
    assert other_gateway.take(erin.sub) is None
    assert requests.take(erin.sub) is None  # within its share: in memory, not yet written
    assert len(stored(redis_url, erin)) == 1  # the request counter; the budget's is pending

    assert counters.forget(erin) == 1
    for q in (requests, budget, other_gateway):
        q.flush()  # what each process's flusher does half a second later
    assert stored(redis_url, erin) == []

    # Their next request, after the forget, counts as ever.
    assert requests.take(erin.sub) is None
    requests.flush()
    assert list(counters.export(erin).values()) == [1]


def test_a_check_that_writes_pending_charges_after_a_forget_writes_none(redis_url: str) -> None:
    erin, counters = person(), Counters(redis_url)
    requests = quota(redis_url, f"test-ms-{uuid.uuid4().hex[:8]}", "3/minute")
    for _ in range(3):
        assert requests.take(erin.sub) is None
    counters.forget(erin)
    # The next check writes the subject's pending charges before asking the storage: they
    # were for requests from before the forget, so none is written and none is counted.
    assert requests.remaining(erin.sub) == 3
    assert stored(redis_url, erin) == []


def test_work_begun_before_a_forget_is_not_charged_when_it_ends(redis_url: str) -> None:
    erin, counters = person(), Counters(redis_url)
    budget = quota(redis_url, f"test-budget-{uuid.uuid4().hex[:8]}", "100000/day")
    began = budget.mark()  # a long answer starts...
    counters.forget(erin)
    # ...the gateway hears of the forget from another write meanwhile...
    budget.charge(f"api:other-{uuid.uuid4().hex[:6]}", 5)
    budget.flush()
    assert budget.mark() != began
    budget.charge(erin.sub, 900, began=began)  # ...and the answer's tokens come at its end,
    budget.charge(erin.sub, 3)  # (with a later charge waiting beside them)
    budget.flush()  # the older work decides for what waits together: none of it is written
    assert stored(redis_url, erin) == []
    budget.charge(erin.sub, 7)  # what they begin after the forget is charged
    budget.flush()
    assert list(counters.export(erin).values()) == [7]


def test_the_forget_count_names_nobody(redis_url: str) -> None:
    erin = person()
    Counters(redis_url).forget(erin)
    client = redis.Redis.from_url(redis_url)
    with client:
        assert int(client.get(FORGETS_KEY) or 0) >= 1
        assert erin.id not in FORGETS_KEY and client.type(FORGETS_KEY) == b"string"


@dataclass
class HeldEngine:
    """An upstream engine (as vLLM or TEI would be) that answers a request whose text says
    "hold" only when the test lets it, so that a forget can come while it is being answered."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def _wait_if_held(self, text: str) -> None:
        if "hold" in text:
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)

    def app(self) -> Starlette:
        async def health(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def chat(request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            await self._wait_if_held(str(body["messages"]))
            return JSONResponse({
                "id": "chatcmpl-held", "object": "chat.completion", "created": 0,
                "model": body.get("model", "held"), "system_fingerprint": "held",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": "Done."}}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}})

        async def embeddings(request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            await self._wait_if_held(str(body["input"]))
            return JSONResponse({"object": "list", "model": body["model"], "data": [
                {"object": "embedding", "index": i, "embedding": [0.1] * 384}
                for i, _ in enumerate(body["input"])]})

        return Starlette(routes=[Route("/health", health),
                                 Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/embeddings", embeddings, methods=["POST"])])


@dataclass
class HeldGateway:
    url: str
    gateway: Gateway
    engine: HeldEngine
    signer: TokenSigner

    def headers(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signer.sign(sub, ttl_s=600)}"}

    async def flush(self) -> None:
        """What the gateway's flusher does every half second, now."""
        await asyncio.to_thread(self.gateway._flush)


@pytest.fixture
def held(service_keys: tuple[str, str], redis_url: str, tmp_path: Path
         ) -> Iterator[HeldGateway]:
    engine = HeldEngine()
    upstream = ServerThread(engine.app()).start()
    settings = make_settings(**gateway_env(
        service_keys, tmp_path / "no-llama-server", redis_url, tmp_path,
        CHARLA_ENGINE="upstream", CHARLA_ENGINE_URL=upstream.url,
        CHARLA_EMBEDDINGS="upstream", CHARLA_EMBEDDINGS_URL=upstream.url))
    app = create(settings)
    server = ServerThread(app).start()
    signer = TokenSigner(private_key=service_keys[0], audience=settings.service_audience,
                         issuer=settings.service_issuer)
    yield HeldGateway(server.url, app.state.gateway, engine, signer)
    engine.release.set()
    server.stop()
    upstream.stop()


CHAT = {"messages": [{"role": "user", "content": "hold on, then answer"}], "max_tokens": 5}
EMBED = {"input": ["hold this passage"]}


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT),
                                            ("/v1/embeddings", EMBED)])
async def test_a_request_being_answered_when_its_person_is_forgotten_leaves_no_counter(
    held: HeldGateway, http: httpx.AsyncClient, redis_url: str, path: str,
    body: dict[str, Any]
) -> None:
    erin, counters = person(), Counters(redis_url)
    asked = asyncio.create_task(http.post(held.url + path, json=body,
                                          headers=held.headers(erin.sub)))
    assert await asyncio.to_thread(held.engine.arrived.wait, 60), "the request never came"
    counters.forget(erin)
    # Someone else's request meanwhile: the gateway writes it, and so hears of the forget.
    other = Person("api", f"other-{uuid.uuid4().hex[:6]}")
    quick = await http.post(held.url + "/v1/embeddings", json={"input": ["hello"]},
                            headers=held.headers(other.sub))
    assert quick.status_code == 200
    await held.flush()
    held.engine.release.set()
    assert (await asyncio.wait_for(asked, 60)).status_code == 200  # charged as it ends...
    await held.flush()
    assert stored(redis_url, erin) == []  # ...but nothing of it is written
    # The gateway still counts: the other person's next request is written.
    again = await http.post(held.url + "/v1/embeddings", json={"input": ["hello"]},
                            headers=held.headers(other.sub))
    assert again.status_code == 200
    await held.flush()
    assert len(counters.export(other)) == 2  # requests and tokens
    assert counters.forget(erin) == 0
