"""Charla's gateway against LiteLLM's proxy, in front of the same engine (``bench.run gateways``).

Each gateway checks a per-key credential (Charla: the service JWT; LiteLLM: a key, see
bench/litellm_proxy.py) and has a request limit and a token cap switched on, counted in the
same Redis. In one run:

- added latency per request, whole (one token) and streamed (a short answer), over the same
  llama-server reached directly, the three taking turns;
- throughput at 8 chats at once, as a share of the engine's direct;
- each gateway's CPU per token, against a stand-in engine that computes nothing
  (bench/standin_engine.py), so that the gateway is the only thing working;
- how far each overshoots a request limit, and a token cap under streaming, with two processes
  of it sharing Redis and eight clients at once spread over both.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from bench import engines, litellm_proxy, procs
from bench.gateway_cpu import cpu_table, measure, standin_binary

LATENCY_ROUNDS = 300
STREAM_TOKENS = 16
THROUGHPUT_ROUNDS = 8
# llama-server serves each connection on one of its HTTP threads (parallel slots + 2 by
# default) for as long as the connection is kept alive, idle or not. Three clients taking
# turns (the direct one, each gateway's) leave idle connections that hold those threads, and
# the next target's new connections wait behind them: measured, four of eight chats through
# the gateway started seconds after the others in some rounds. In use, the gateway is the
# engine's only client. Enough threads for all three keeps the turns from slowing each other.
ENGINE_HTTP = {"CHARLA_ENGINE_ARGS": "--threads-http 32"}
STANDIN_ROUNDS = 200
CHATS = 8
REQUEST_LIMIT = 40  # requests a minute, per key
TOKEN_CAP = 3000  # tokens a minute, per key
ANSWER_TOKENS = 128  # each answer's length in the token-cap test

Target = tuple[str, dict[str, str]]


def _body(max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": litellm_proxy.MODEL, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": "Hi"}],
                            "temperature": 0, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def _answer(client: aiohttp.ClientSession, url: str, headers: dict[str, str],
                  body: dict[str, Any]) -> tuple[int, int]:
    """The status, and the tokens the answer's usage reports (0 when refused)."""
    async with client.post(url + "/v1/chat/completions", json=body,
                           headers=headers) as response:
        if response.status != 200:
            await response.read()
            return response.status, 0
        if not body["stream"]:
            return 200, int((await response.json())["usage"]["total_tokens"])
        tokens = 0
        async for raw in response.content:
            line = raw.strip()
            if line.startswith(b"data: {"):
                usage = json.loads(line[6:]).get("usage")
                if usage:
                    tokens = int(usage["total_tokens"])
        return 200, tokens


async def overshoot(urls: list[str], headers: dict[str, str], requests: int, *,
                    stream: bool, max_tokens: int) -> dict[str, int]:
    """``requests`` requests by :data:`CHATS` clients at once, spread over ``urls`` in turn:
    how many were answered, refused (429) or failed otherwise, and the tokens answered."""
    counts = {"answered": 0, "refused": 0, "failed": 0, "tokens": 0}
    turn = itertools.count()
    body = _body(max_tokens, stream)

    async def client_loop(client: aiohttp.ClientSession) -> None:
        while (i := next(turn)) < requests:
            status, tokens = await _answer(client, urls[i % len(urls)], headers, body)
            kind = "answered" if status == 200 else "refused" if status == 429 else "failed"
            counts[kind] += 1
            counts["tokens"] += tokens

    async with engines.session() as client:
        await asyncio.gather(*(client_loop(client) for _ in range(CHATS)))
    return counts


async def limits(urls: list[str], requests_auth: str, tokens_auth: str) -> dict[str, Any]:
    """The request limit and the token cap, each with a credential of its own, so that each
    starts with its whole allowance."""
    return {
        "requests": await overshoot(urls, {"Authorization": f"Bearer {requests_auth}"},
                                    3 * REQUEST_LIMIT, stream=False, max_tokens=1),
        "tokens": await overshoot(urls, {"Authorization": f"Bearer {tokens_auth}"},
                                  3 * TOKEN_CAP // ANSWER_TOKENS, stream=True,
                                  max_tokens=ANSWER_TOKENS),
    }


def _both_latencies(out: dict[str, Any], prefix: str, targets: dict[str, Target],
                    rounds: int) -> None:
    """A whole one-token answer's latencies, then a short streamed answer's."""
    out[f"{prefix}_whole"] = asyncio.run(engines.tiny_latencies(
        targets, rounds, _body(max_tokens=1, stream=False)))
    out[f"{prefix}_stream"] = asyncio.run(engines.tiny_latencies(
        targets, rounds, _body(max_tokens=STREAM_TOKENS, stream=True)))


def _real_engine(out: dict[str, Any], logdir: Path, keys: procs.Keys,
                 litellm_key: str) -> None:
    charla_headers = {"Authorization": f"Bearer {keys.service_token('bench-gateways')}"}
    litellm_headers = {"Authorization": f"Bearer {litellm_key}"}
    litellm_proxy.flush_counters()
    with ExitStack() as stack:
        gw, engine = stack.enter_context(procs.gateway(keys, logdir, home="gateway-vs-litellm",
                                                       **ENGINE_HTTP))
        ll = stack.enter_context(litellm_proxy.proxy(
            logdir, "real", engine, {litellm_key: "bench"}, rpm=1_000_000, tpm=1_000_000_000))
        targets = {"direct": (engine, {}), "charla": (gw, charla_headers),
                   "litellm": (ll, litellm_headers)}
        _both_latencies(out, "latency", targets, LATENCY_ROUNDS)
        for mode in ("stream", "whole"):
            rates, cut = asyncio.run(engines.interleaved(targets, (CHATS,), THROUGHPUT_ROUNDS,
                                                         stream=mode == "stream"))
            out[f"throughput_{mode}"] = {name: per[CHATS] for name, per in rates.items()}
            out[f"cut_{mode}"] = {name: per[CHATS] for name, per in cut.items()}


def _standin(out: dict[str, Any], logdir: Path, keys: procs.Keys, litellm_key: str) -> None:
    standin = standin_binary(logdir)
    charla_headers = {"Authorization": f"Bearer {keys.service_token('bench-gateways-cpu')}"}
    litellm_headers = {"Authorization": f"Bearer {litellm_key}"}
    with ExitStack() as stack:
        gw, engine = stack.enter_context(procs.gateway(keys, logdir, engine=standin,
                                                       home="gateway-cpu-vs-litellm"))
        litellm_proxy.flush_counters()
        ll = stack.enter_context(litellm_proxy.proxy(
            logdir, "standin", engine, {litellm_key: "bench"}, rpm=1_000_000,
            tpm=1_000_000_000))
        targets = {"direct": (engine, {}), "charla": (gw, charla_headers),
                   "litellm": (ll, litellm_headers)}
        _both_latencies(out, "standin", targets, STANDIN_ROUNDS)
        out["cpu"] = asyncio.run(measure({
            "charla": (gw, charla_headers, {"charla": procs.process_serving(gw)}),
            "litellm": (ll, litellm_headers, {"litellm": procs.process_serving(ll)}),
        }))


def _two_processes(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Both gateways, two processes each on one Redis, with the limits low enough to reach."""
    standin = standin_binary(logdir)
    limits_env = {"CHARLA_MODEL_RATE_LIMIT": f"{REQUEST_LIMIT}/minute",
                  "CHARLA_TOKEN_BUDGET": f"{TOKEN_CAP}/minute"}
    litellm_keys = {"sk-bench-requests-" + secrets.token_hex(8): "requests",
                    "sk-bench-tokens-" + secrets.token_hex(8): "tokens"}
    with ExitStack() as stack:
        charla = [stack.enter_context(procs.gateway(keys, logdir, engine=standin,
                                                    home=f"gateway-limits-{i}", **limits_env))
                  for i in (1, 2)]
        litellm_proxy.flush_counters()
        litellm = [stack.enter_context(litellm_proxy.proxy(
            logdir, f"limits-{i}", charla[0][1], litellm_keys, rpm=REQUEST_LIMIT,
            tpm=TOKEN_CAP)) for i in (1, 2)]
        subs = (f"limit-{kind}-{secrets.token_hex(4)}" for kind in ("requests", "tokens"))
        out["limits"] = {
            "charla": asyncio.run(limits([gw for gw, _ in charla],
                                         *(keys.service_token(sub) for sub in subs))),
            "litellm": asyncio.run(limits(litellm, *litellm_keys)),
        }


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["gateways"]``."""
    print("== gateways: Charla's against LiteLLM's proxy, in front of the same engine",
          flush=True)
    result: dict[str, Any] = {"litellm_version": litellm_proxy.version()}
    litellm_key = "sk-bench-" + secrets.token_hex(16)
    _real_engine(result, logdir, keys, litellm_key)
    _standin(result, logdir, keys, litellm_key)
    _two_processes(result, logdir, keys)
    out["gateways"] = result


def _added(data: dict[str, Any], key: str, name: str, q: float) -> float:
    per = data[key]
    return engines.percentile(per[name], q) - engines.percentile(per["direct"], q)


def _share(charla: float, litellm: float) -> str:
    return f"{charla / litellm:.2f}" if litellm > 0 else "n/a"


def _latency_rows(data: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    for kind, label in (("whole", "whole, 1 token"),
                        ("stream", f"streamed, {STREAM_TOKENS} tokens")):
        key = f"{prefix}_{kind}"
        direct = data[key]["direct"]
        added = {name: (_added(data, key, name, 0.5), _added(data, key, name, 0.99))
                 for name in ("charla", "litellm")}
        rows.append(
            f"| {label} | {engines.percentile(direct, 0.5):.1f} / "
            f"{engines.percentile(direct, 0.99):.1f} ms | {added['charla'][0]:.2f} / "
            f"{added['charla'][1]:.1f} ms | {added['litellm'][0]:.2f} / "
            f"{added['litellm'][1]:.1f} ms | {_share(added['charla'][0], added['litellm'][0])} |")
    return rows


def _round_ratios(data: dict[str, Any], mode: str, name: str) -> float:
    """The median over rounds of ``name``'s tok/s over the engine direct's in the same round."""
    per = data[f"throughput_{mode}"]
    return engines.median([a / b for a, b in zip(per[name], per["direct"], strict=True)])


def report_lines(data: dict[str, Any]) -> list[str]:
    head = ("| answer | engine direct p50 / p99 | Charla adds p50 / p99 | LiteLLM adds p50 / p99 "
            "| Charla's added p50 as a share of LiteLLM's |")
    lines = [f"Charla's gateway against LiteLLM {data['litellm_version']}'s proxy in front of "
             "the same engine, each with a per-key credential, a request limit and a token cap "
             f"switched on, in Redis. Added latency, against the stand-in engine (no computing: "
             f"the gateway's own time; {STANDIN_ROUNDS} requests of each kind per target, "
             "taking turns):", "", head, "|---|---|---|---|---|",
             *_latency_rows(data, "standin"), "",
             f"The same against llama-server with the bundled model ({LATENCY_ROUNDS} requests "
             "of each kind per target; the engine's own spread is larger than either "
             "gateway's):", "", head, "|---|---|---|---|---|",
             *_latency_rows(data, "latency")]
    lines += ["", f"Throughput at {CHATS} chats at once on llama-server ({THROUGHPUT_ROUNDS} "
              "interleaved rounds of 128 tokens a chat), as a share of the engine reached "
              "directly in the same round (median over rounds):", "",
              "| answers | engine direct (median) | Charla | LiteLLM |", "|---|---|---|---|"]
    for mode in ("stream", "whole"):
        direct = engines.median(data[f"throughput_{mode}"]["direct"])
        lines.append(f"| {'streamed' if mode == 'stream' else 'whole'} | {direct:.0f} tok/s | "
                     f"{_round_ratios(data, mode, 'charla'):.3f} | "
                     f"{_round_ratios(data, mode, 'litellm'):.3f} |")
    cpu = data["cpu"]
    lines += ["", *cpu_table("Each gateway's process CPU per token against a stand-in engine "
                             "that computes nothing (128 tokens per chat):", cpu), "",
              "Charla's CPU per streamed token as a share of LiteLLM's: "
              f"{_share(cpu['stream_1']['charla'], cpu['stream_1']['litellm'])} for one chat, "
              f"{_share(cpu['stream_8']['charla'], cpu['stream_8']['litellm'])} for eight."]
    lines += ["", f"Limits over two processes of each gateway sharing Redis, {CHATS} clients at "
              "once spread over both (stand-in engine):", "",
              "| limit | allowance | Charla: answered, over by | LiteLLM: answered, over by |",
              "|---|---|---|---|"]
    limits = data["limits"]
    row = []
    for name in ("charla", "litellm"):
        answered = limits[name]["requests"]["answered"]
        row.append(f"{answered} requests, {answered - REQUEST_LIMIT}")
    lines.append(f"| requests, whole answers | {REQUEST_LIMIT} a minute | {row[0]} | {row[1]} |")
    row = []
    for name in ("charla", "litellm"):
        got = limits[name]["tokens"]
        each = got["tokens"] / max(got["answered"], 1)
        over = got["tokens"] - TOKEN_CAP
        row.append(f"{got['tokens']} tokens in {got['answered']} answers, {over} "
                   f"({over / each:.1f} answers)")
    lines.append(f"| tokens, streamed answers of {ANSWER_TOKENS} | {TOKEN_CAP} a minute "
                 f"(LiteLLM: tpm_limit) | {row[0]} | {row[1]} |")
    return lines
