"""llama.cpp's flash attention on the CPU, on and off, side by side (CHARLA_ENGINE_FLASH_ATTN).

One ``llama-server`` binary, two processes on the bundled model as the gateway starts it, one
with ``--flash-attn on``, one with ``--flash-attn off``, reached directly, in interleaved
rounds: a conversation of about 1,750 tokens nobody sent before (time to its first token), the
next turn of it (time to the first token, its prefix cached in the slot), the decoding speed
after that long prompt, and whole-answer tok/s for short prompts at 1 and 8 chats.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs

MODES = ("on", "off")
ROUNDS = 3
CHATS = (1, 8)


async def _deep_decode(client: Any, url: str) -> float:
    """Tokens/s of a 128-token answer after a long conversation, by llama-server's own timer."""
    from bench import engines  # aiohttp: installed by make bench only

    messages = engines.conversation(uuid.uuid4().hex)
    messages.append({"role": "user", "content": "Tell me more about the first topic."})
    body = {"messages": messages, "max_tokens": 128, "temperature": 0, "ignore_eos": True}
    async with client.post(url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        rate: float = (await response.json())["timings"]["predicted_per_second"]
        return rate


async def _measure(targets: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    from bench import engines  # aiohttp: installed by make bench only

    out: dict[str, dict[str, list[float]]] = {
        name: {"first_ms": [], "second_ms": [], "prompt_tokens": [], "deep_tok_s": []}
        for name in targets}
    async with engines.session() as client:
        for _ in range(ROUNDS):
            for name, url in targets.items():
                # llama-server closes a connection after a streamed answer; aiohttp would
                # send the next turn on it.
                turns = await engines.second_turn(url, {"Connection": "close"})
                out[name]["first_ms"].append(turns.first_ms)
                out[name]["second_ms"].append(turns.second_ms)
                out[name]["prompt_tokens"].append(turns.prompt_tokens)
                out[name]["deep_tok_s"].append(await _deep_decode(client, url))
    return out


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    from bench import engines  # aiohttp: installed by make bench only

    print("== flash attention on and off", flush=True)
    with ExitStack() as stack:
        targets = {mode: stack.enter_context(procs.llama_server(logdir, f"fa-{mode}",
                                                                "--flash-attn", mode))
                   for mode in MODES}
        deep = asyncio.run(_measure(targets))
        rates, _cut = asyncio.run(engines.interleaved(
            {mode: (url, {}) for mode, url in targets.items()}, CHATS, ROUNDS))
    out["attention"] = {
        mode: {key: statistics.median(values) for key, values in deep[mode].items()}
        | {"tok_s": {str(n): statistics.median(rates[mode][n]) for n in CHATS}}
        for mode in MODES}


def report_lines(data: dict[str, Any]) -> list[str]:
    on, off = data["on"], data["off"]
    lines = [f"llama-server with --flash-attn on and off, reached directly, medians of {ROUNDS} "
             f"interleaved rounds; a conversation of {on['prompt_tokens']:,.0f} prompt tokens "
             "never sent before, then its next turn:", "",
             "| | flash attention on | off | off / on |", "|---|---|---|---|"]

    def row(label: str, a: float, b: float, unit: str) -> None:
        lines.append(f"| {label} | {a:,.0f} {unit} | {b:,.0f} {unit} | {b / a:.2f} |")

    row("first turn, time to first token", on["first_ms"], off["first_ms"], "ms")
    row("second turn, time to first token", on["second_ms"], off["second_ms"], "ms")
    lines.append(f"| second / first | {on['second_ms'] / on['first_ms']:.3f} | "
                 f"{off['second_ms'] / off['first_ms']:.3f} | |")
    row("decoding after the long prompt", on["deep_tok_s"], off["deep_tok_s"], "tok/s")
    for n in CHATS:
        row(f"short prompts, {n} chat{'s' if n > 1 else ''}", on["tok_s"][str(n)],
            off["tok_s"][str(n)], "tok/s")
    return lines
