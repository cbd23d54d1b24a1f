"""What a chat request costs its user when it ends early, and what it leaves the engine doing.

Against the real llama.cpp server, behind the gateway either as the local engine or as an
upstream one (the huggingface_hub client, as for TGI or vLLM), reached over real HTTP. The
budget is read back from Redis, where the gateway writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from limits.strategies import FixedWindowRateLimiter

from model_server.engines.base import Usage
from model_server.engines.inference_client import InferenceClientEngine
from model_server.engines.openai_http import OpenAIHTTPProxy
from shared.chat import Message, prompt_tokens
from tests.conftest import Gateway, ServerThread, gateway_env, make_settings, spent

LONG: list[Message] = [{"role": "user", "content": "Write a very long story."}]
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Served:
    url: str
    gateway: Gateway  # the session's: its signer, and the llama-server both modes reach
    budget: FixedWindowRateLimiter

    def charged(self, sub: str) -> int:
        return spent(self.budget, self.gateway, sub)





@pytest.fixture(scope="module")
def upstream_url(gateway: Gateway, service_keys: tuple[str, str], redis_url: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway with CHARLA_ENGINE=upstream in front of the session's llama-server."""
    from model_server.main import create

    env = gateway_env(service_keys, gateway.engine._binary, redis_url,
                      tmp_path_factory.mktemp("charges"), CHARLA_ENGINE="upstream",
                      CHARLA_ENGINE_URL=f"http://127.0.0.1:{gateway.engine.port}")
    server = ServerThread(create(make_settings(**env))).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["llama-server", "upstream"])
def served(request: pytest.FixtureRequest, gateway: Gateway,
           budget: FixedWindowRateLimiter) -> Served:
    url = gateway.url if request.param == "llama-server" else request.getfixturevalue(
        "upstream_url")
    return Served(url, gateway, budget)


async def _engine_stats(gateway: Gateway, http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get(f"http://127.0.0.1:{gateway.engine.port}/metrics")).text
    return {name.removeprefix("llamacpp:"): float(value) for name, value in
            (line.split() for line in text.splitlines() if line.startswith("llamacpp:"))}


async def _engine_busy(gateway: Gateway, http: httpx.AsyncClient) -> float:
    return (await _engine_stats(gateway, http))["requests_processing"]


async def _engine_stops(gateway: Gateway, http: httpx.AsyncClient, within: int = 50) -> None:
    """Wait for the engine to go idle after a hang-up, failing as soon as it has generated
    more than ``within`` tokens since (about one decode a token while it serves one request).
    Its /metrics are read all the while, which also keeps it busy answering other requests.

    Counted in tokens, not seconds: on a busy machine the token that makes llama-server see the
    closed connection can take seconds to come, yet it is the only one. (A stream sees it at
    its next token, a whole answer at its next look, every second.) A prompt being read when
    the client left is read to its end first: _long_prompt's 1,900 tokens took 10 to 20 s on
    a busy two-core machine, so the wait has no bound of its own but the test's timeout."""
    start = (await _engine_stats(gateway, http))["n_decode_total"]
    while (stats := await _engine_stats(gateway, http))["requests_processing"] > 0:
        decoded = stats["n_decode_total"] - start
        assert decoded <= within, (
            f"the engine kept generating for a client that left ({decoded:g})")
        await asyncio.sleep(0.05)


TOKENS = ('charla_tokens_total{kind="prompt"}', 'charla_tokens_total{kind="completion"}')
ESTIMATED = "charla_usage_estimated_total"
LEFT = 'charla_requests_total{route="/v1/chat/completions",status="499"}'


async def _metric(served: Served, http: httpx.AsyncClient, *series: str) -> float:
    """The sum of the gateway's ``series`` (each named with its labels) now."""
    text = (await http.get(served.url + "/metrics", headers=served.gateway.headers())).text
    wanted = tuple(name + " " for name in series)
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


async def _charge_of(served: Served, sub: str, within_s: float = 30.0) -> int:
    """What ``sub`` was charged, once the gateway has written it (every half second)."""
    deadline = time.monotonic() + within_s
    while served.charged(sub) == 0:
        assert time.monotonic() < deadline, "nothing was charged"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.6)  # anything still pending is written by now
    return served.charged(sub)


async def test_a_stream_the_client_leaves_is_still_charged(
    served: Served, http: httpx.AsyncClient
) -> None:
    sub = f"leaver-{uuid.uuid4().hex}"
    tokens_before = await _metric(served, http, *TOKENS)
    estimated_before = await _metric(served, http, ESTIMATED)
    body = {"messages": LONG, "max_tokens": 2000, "temperature": 0, "stream": True}
    seen = 0
    async with http.stream("POST", served.url + CHAT_PATH, json=body,
                           headers=served.gateway.headers(sub)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            seen += line.count('"content":"')
            if seen >= 3:
                break  # three tokens read, then the client hangs up
    await _engine_stops(served.gateway, http)
    charged = await _charge_of(served, sub)
    # No usage came from the engine: the prompt's estimate and the tokens that passed.
    assert prompt_tokens(LONG) + seen <= charged < prompt_tokens(LONG) + 2000
    # The metrics count what was charged, and that it was an estimate.
    assert await _metric(served, http, *TOKENS) - tokens_before == charged
    assert await _metric(served, http, ESTIMATED) - estimated_before == 1


async def _hang_up_while_the_engine_works(served: Served, http: httpx.AsyncClient,
                                         body: dict[str, object], sub: str) -> None:
    """Send ``body`` and close the connection once the engine is seen working on it."""
    async def ask() -> None:
        async with http.stream("POST", served.url + CHAT_PATH, json=body,
                               headers=served.gateway.headers(sub)) as response:
            assert response.status_code == 200, await response.aread()
            await response.aread()

    asked = asyncio.create_task(ask())
    deadline = time.monotonic() + 60
    while await _engine_busy(served.gateway, http) < 1:
        assert not asked.done(), "the answer came before the engine was seen working"
        assert time.monotonic() < deadline, "the engine did not start"
        await asyncio.sleep(0.02)
    asked.cancel()  # the caller gives up (a timeout in the functions): its connection closes
    with contextlib.suppress(asyncio.CancelledError):
        await asked


def _long_prompt() -> list[Message]:
    """About 1,000 tokens never seen before (no cached prefix): a second or more of reading."""
    words = " ".join(f"{uuid.uuid4().hex[:6]}" for _ in range(300))
    return [{"role": "user", "content": f"Summarise these codes: {words}"}]


async def test_a_stream_left_before_its_first_token_stops_the_engine_and_pays_the_prompt(
    served: Served, http: httpx.AsyncClient
) -> None:
    sub = f"quitter-{uuid.uuid4().hex}"
    left_before = await _metric(served, http, LEFT)
    messages = _long_prompt()
    body = {"messages": messages, "max_tokens": 2000, "temperature": 0, "stream": True}
    await _hang_up_while_the_engine_works(served, http, body, sub)
    await _engine_stops(served.gateway, http)  # instead of writing 2,000 tokens
    charged = await _charge_of(served, sub)
    assert prompt_tokens(messages) <= charged < prompt_tokens(messages) + 2000
    assert await _metric(served, http, LEFT) - left_before == 1  # counted as "client left"


async def test_a_whole_answer_whose_caller_hangs_up_stops_the_engine_and_pays_the_prompt(
    served: Served, http: httpx.AsyncClient
) -> None:
    """A whole (not streamed) answer: the gateway drops the engine's request when its caller
    hangs up, and the engine stops within a second, busy as it is answering /metrics (which,
    unpatched, kept llama-server from ever looking: charla/llamabuild.SERVER_PATCHES)."""
    sub = f"quitter-{uuid.uuid4().hex}"
    left_before = await _metric(served, http, LEFT)
    estimated_before = await _metric(served, http, ESTIMATED)
    body = {"messages": LONG, "max_tokens": 2000, "temperature": 0}
    await _hang_up_while_the_engine_works(served, http, body, sub)
    # A second of writing, at up to about 200 tokens a second on the machines we know.
    await _engine_stops(served.gateway, http, within=600)
    charged = await _charge_of(served, sub)
    # The engine's count never came: the prompt, by estimate.
    assert charged == prompt_tokens(LONG)
    assert await _metric(served, http, ESTIMATED) - estimated_before == 1
    assert await _metric(served, http, LEFT) - left_before == 1


async def _llama_events(gateway: Gateway, body: dict[str, object],
                        usage: Usage) -> AsyncIterator[bytes]:
    proxy = OpenAIHTTPProxy("127.0.0.1", gateway.engine.port)
    try:
        async for event in proxy.stream(body, usage, forward_usage=False):
            yield event
    finally:
        await proxy.close()


async def _upstream_events(gateway: Gateway, body: dict[str, object],
                           usage: Usage) -> AsyncIterator[bytes]:
    engine = InferenceClientEngine(base_url=f"http://127.0.0.1:{gateway.engine.port}",
                                   model="upstream-model")
    try:
        async for event in engine.stream(body, usage, forward_usage=False):
            yield event
    finally:
        await engine.close()


Events = Callable[[Gateway, dict[str, object], Usage], AsyncIterator[bytes]]


@pytest.mark.parametrize("events", [_llama_events, _upstream_events])
async def test_counted_deltas_match_the_engines_own_count(gateway: Gateway,
                                                          events: Events) -> None:
    """Each engine counts the deltas as they pass; that count stands in for the engine's usage
    when none comes, and it is about one token per delta."""
    body = {"messages": [{"role": "user", "content": "Count from one to twenty in words."}],
            "max_tokens": 40, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    usage = Usage()
    async for _event in events(gateway, body, usage):
        pass
    assert usage.reported
    assert usage.completion_tokens > 10
    assert abs(usage.counted - usage.completion_tokens) <= 1
