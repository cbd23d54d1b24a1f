"""Chat throughput, gateway overhead and prompt-cache reuse, measured over real HTTP."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

TOPICS = ["a lighthouse keeper", "a dragon who bakes bread", "a robot gardener",
          "a lost satellite", "a chess tournament", "a city under the sea",
          "a talking violin", "a winter market", "a desert train", "a clockmaker's apprentice"]


def story(i: int) -> list[dict[str, str]]:
    return [{"role": "user",
             "content": f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}."}]


@dataclass
class Throughput:
    chats: int
    tokens: int
    seconds: float
    cut: int = 0  # chats whose answer stopped before max_tokens without saying why

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


def session() -> aiohttp.ClientSession:
    """One client for every target: aiohttp sends headers and body in one write, which
    llama-server answers fastest, so "direct" is measured at its best."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600),
                                 connector=aiohttp.TCPConnector(limit=64))


async def _one(client: aiohttp.ClientSession, url: str, headers: dict[str, str],
               messages: list[dict[str, str]], max_tokens: int, stream: bool = False
               ) -> tuple[int, bool]:
    """Completion tokens of one chat, and whether its stream was cut off."""
    body = {"model": "smollm2-135m-instruct", "messages": messages, "max_tokens": max_tokens,
            "temperature": 0, "stream": stream}
    async with client.post(url + "/v1/chat/completions", json=body,
                           headers=headers) as response:
        response.raise_for_status()
        if not stream:
            tokens: int = (await response.json())["usage"]["completion_tokens"]
            return tokens, False
        # One content delta per token (both servers stream token by token); a stream that
        # breaks off (llama-cpp-python interrupts a stream when another request waits) counts
        # the tokens that arrived.
        chunks, finished = 0, False
        try:
            async for raw in response.content:
                line = raw.strip()
                if line.startswith(b"data: {"):
                    for choice in json.loads(line[6:]).get("choices", []):
                        chunks += bool((choice.get("delta") or {}).get("content"))
                        finished = finished or bool(choice.get("finish_reason"))
        except aiohttp.ClientPayloadError:
            pass
        return chunks, not finished


async def throughput(client: aiohttp.ClientSession, url: str, headers: dict[str, str],
                     chats: int, *, max_tokens: int = 128, stream: bool = False) -> Throughput:
    """``chats`` conversations at once, each asking for ``max_tokens``; aggregate tokens/s.

    The client is long-lived, as the gateway's own is: llama-server serves new connections
    behind lingering ones, so a fresh client per round would measure its accept path."""
    await _one(client, url, headers, story(0), 4)  # warm
    started = time.perf_counter()
    done = await asyncio.gather(*(_one(client, url, headers, story(i), max_tokens, stream)
                                  for i in range(chats)))
    return Throughput(chats, sum(t for t, _ in done), time.perf_counter() - started,
                      sum(cut for _, cut in done))


async def interleaved(targets: dict[str, tuple[str, dict[str, str]]], chats: tuple[int, ...],
                      rounds: int, *, stream: bool = False
                      ) -> tuple[dict[str, dict[int, list[float]]], dict[str, dict[int, int]]]:
    """``rounds`` rounds per number of chats, the targets taking turns in each, so that drift
    on a shared machine hits them alike: tok/s per round, and the chats whose stream was cut
    off, per target and number of chats."""
    rates: dict[str, dict[int, list[float]]] = {name: {n: [] for n in chats} for name in targets}
    cut = {name: dict.fromkeys(chats, 0) for name in targets}
    clients = {name: session() for name in targets}
    try:
        for n in chats:
            for _ in range(rounds):
                for name, (url, headers) in targets.items():
                    result = await throughput(clients[name], url, headers, n, stream=stream)
                    rates[name][n].append(result.tok_s)
                    cut[name][n] += result.cut
    finally:
        for client in clients.values():
            await client.close()
    return rates, cut


async def tiny_latencies(targets: dict[str, tuple[str, dict[str, str]]], n: int,
                         body: dict[str, Any] | None = None) -> dict[str, list[float]]:
    """Interleaved requests against each target (``body``, or a one-token answer), each read
    to its last byte: per-request latency in ms."""
    body = body or {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
                    "temperature": 0}
    out: dict[str, list[float]] = {name: [] for name in targets}
    async with session() as client:
        for round_ in range(n + 5):
            for name, (url, headers) in targets.items():
                started = time.perf_counter()
                async with client.post(url + "/v1/chat/completions", json=body,
                                       headers=headers) as response:
                    await response.read()
                    response.raise_for_status()
                if round_ >= 5:  # the first rounds warm connections and caches
                    out[name].append((time.perf_counter() - started) * 1000)
    return out


def conversation(nonce: str, turns: int = 9) -> list[dict[str, str]]:
    """About 1,500 tokens of earlier conversation, unique per ``nonce`` (a cold cache)."""
    messages = [{"role": "system",
                 "content": f"You are Charla, a helpful assistant. Session {nonce}."}]
    for i in range(turns):
        topic = TOPICS[i % len(TOPICS)]
        messages.append({"role": "user", "content": f"Tell me about {topic}, please. " * 4})
        messages.append({"role": "assistant", "content": (
            f"Here is what I know about {topic}. It is a subject with a long history, many "
            "small details and a few surprises that people often overlook when they first "
            "hear about it. The most important part is how it changes over time, how it "
            "affects the people around it, and what we can learn from it for our own work. ")
            * 2})
    return messages


async def ttft(client: aiohttp.ClientSession, url: str, headers: dict[str, str],
                messages: list[dict[str, str]]) -> tuple[float, str, int]:
    body = {"messages": messages, "max_tokens": 48, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    prompt_tokens = 0
    async with client.post(url + "/v1/chat/completions", json=body,
                           headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {await response.text()}")
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: {"):
                continue
            data: dict[str, Any] = json.loads(line[6:])
            for choice in data.get("choices", []):
                text = choice["delta"].get("content")
                if text:
                    if first is None:
                        first = time.perf_counter() - started
                    parts.append(text)
            if data.get("usage"):
                prompt_tokens = data["usage"]["prompt_tokens"]
    assert first is not None
    return first * 1000, "".join(parts), prompt_tokens


@dataclass
class Turns:
    prompt_tokens: int
    first_ms: float
    second_ms: float

    @property
    def ratio(self) -> float:
        return self.second_ms / self.first_ms


async def second_turn(url: str, headers: dict[str, str]) -> Turns:
    """Time to first token of a conversation's turn, cold, then of the turn after it."""
    async with session() as client:
        messages = conversation(uuid.uuid4().hex)
        messages.append({"role": "user", "content": "Summarise our conversation in one line."})
        first_ms, answer, prompt_tokens = await ttft(client, url, headers, messages)
        messages += [{"role": "assistant", "content": answer},
                     {"role": "user", "content": "Thanks. And which topic came first?"}]
        second_ms, _, _ = await ttft(client, url, headers, messages)
    return Turns(prompt_tokens, first_ms, second_ms)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
