"""A token budget under answers running at once, over two gateway processes sharing Redis.

Each chat request holds the most it can cost (its prompt by estimate and its max_tokens) when
it passes the budget's check, and gives back what it did not use when it ends
(model_server/charges.py). Two gateways in front of the session's llama-server stand for two
processes: each counts in a Quota of its own, on the same Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from limits import parse as parse_limit
from limits.strategies import FixedWindowRateLimiter

from tests.conftest import Gateway, ServerThread, gateway_env, make_settings

BUDGET = 100  # tokens an hour
ANSWER = 16  # max_tokens of each request
CHAT_PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def two_gateways(gateway: Gateway, service_keys: tuple[str, str], redis_url: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    from model_server.main import create

    servers = []
    for i in (1, 2):
        env = gateway_env(service_keys, gateway.engine._binary, redis_url,
                          tmp_path_factory.mktemp(f"holds-{i}"), CHARLA_ENGINE="upstream",
                          CHARLA_ENGINE_URL=f"http://127.0.0.1:{gateway.engine.port}",
                          CHARLA_TOKEN_BUDGET=f"{BUDGET}/hour")
        servers.append(ServerThread(create(make_settings(**env))).start())
    yield [server.url for server in servers]
    for server in servers:
        server.stop()


def _body(stream: bool) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "Tell me about the sea."}],
            "max_tokens": ANSWER, "temperature": 0, "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {})}


async def _ask(http: httpx.AsyncClient, url: str, headers: dict[str, str]
               ) -> tuple[int, str, int]:
    """Status, error code, and the tokens the answer's usage says it cost."""
    async with http.stream("POST", url + CHAT_PATH, json=_body(True), headers=headers) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code, r.json()["error"]["code"], 0
        tokens = 0
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage")
                tokens = usage["total_tokens"] if usage else tokens
        return 200, "", tokens


async def test_streams_at_once_over_two_processes_overshoot_by_at_most_one_answer(
    gateway: Gateway, two_gateways: list[str], http: httpx.AsyncClient
) -> None:
    # The gateways learn what the engine adds to a prompt (its template) from a first answer.
    for url in two_gateways:
        await _ask(http, url, gateway.headers())
    headers = gateway.headers(sub := f"streams-{uuid.uuid4().hex}")
    asked = [_ask(http, two_gateways[i % 2], headers) for i in range(8)]
    done = await asyncio.gather(*asked)
    answered = [tokens for status, _, tokens in done if status == 200]
    refused = [code for status, code, _ in done if status == 429]
    assert len(answered) + len(refused) == 8
    assert refused and set(refused) == {"token_budget_exceeded"}
    # Every answer cost about the same: the budget is overshot by at most one of them.
    assert sum(answered) <= BUDGET + max(answered), (sub, answered)


async def test_what_a_hold_did_not_use_is_given_back(
    gateway: Gateway, two_gateways: list[str], http: httpx.AsyncClient,
    budget: FixedWindowRateLimiter,
) -> None:
    """The hold (the prompt and all 16 answer tokens) is charged while the answer runs; once
    it ends, the budget has been charged what the answer cost, no more."""
    sub = f"given-back-{uuid.uuid4().hex}"
    # Stopped at its first space: an answer much shorter than the 16 tokens held for it.
    answer = await http.post(two_gateways[0] + CHAT_PATH, json={**_body(False), "stop": [" "]},
                             headers=gateway.headers(sub))
    usage = answer.json()["usage"]
    assert usage["completion_tokens"] < ANSWER // 2
    cost = usage["total_tokens"]
    item = parse_limit(f"{BUDGET}/hour")

    def charged() -> int:
        return BUDGET - int(budget.get_window_stats(item, "charla-budget", sub)[1])

    deadline = time.monotonic() + 30
    while charged() != cost:  # given back by the gateway's next flush
        assert time.monotonic() < deadline, (charged(), cost)
        await asyncio.sleep(0.1)
