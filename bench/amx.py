"""llama.cpp's AMX kernels on and off, side by side, on the cached ``llama-server``.

charla/llamabuild.py patches llama.cpp so that its AMX kernels (Sapphire Rapids and later)
work; this part measures what they give. One binary, two processes on the bundled model: one
as the gateway starts it, one with ``--no-repack``, which keeps the weights out of the AMX
buffer so that every product runs on the AVX-512 kernels a build without AMX uses. Interleaved
rounds: whole-answer tok/s at 1, 4 and 8 chats, and the time to the first token of a
1,500-token conversation nobody has sent before (the prompt's evaluation). On a CPU without
AMX, or where the cached binary had to be built without the AMX kernels, the part says so and
measures nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from charla.llamabuild import build, cmake_flags

CHATS = (1, 4, 8)
ROUNDS = 3
PROMPT_ROUNDS = 5


def _cpu_flags() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.read_text() if cpuinfo.exists() else ""


def skipped_because() -> str | None:
    """Why the comparison cannot run here, or None."""
    if " amx_int8" not in _cpu_flags():
        return "this CPU has no AMX"
    _what, *flags = (build().parent / "recipe.txt").read_text().splitlines()
    if tuple(flags) == cmake_flags("x86_64", amx=False):  # AMX is x86-64 only
        return "the cached llama-server was built without llama.cpp's AMX kernels"
    return None


async def _first_tokens(targets: dict[str, tuple[str, dict[str, str]]]
                        ) -> tuple[int, dict[str, list[float]]]:
    from bench import engines  # aiohttp: installed by make bench only

    out: dict[str, list[float]] = {name: [] for name in targets}
    prompt_tokens = 0
    async with engines.session() as client:
        for _ in range(PROMPT_ROUNDS):
            for name, (url, headers) in targets.items():
                messages = engines.conversation(uuid.uuid4().hex)  # never cached
                ms, _answer, prompt_tokens = await engines.ttft(client, url, headers, messages)
                out[name].append(ms)
    return prompt_tokens, out


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    from bench import engines  # aiohttp: installed by make bench only

    print("== llama.cpp's AMX kernels on and off", flush=True)
    reason = skipped_because()
    if reason:
        print(f"   skipped: {reason}", flush=True)
        out["amx"] = {"skipped": reason}
        return
    with ExitStack() as stack:
        targets: dict[str, tuple[str, dict[str, str]]] = {
            name: (stack.enter_context(procs.llama_server(logdir, slug, *extra)), {})
            for name, slug, extra in (("AMX on", "amx-on", ()),
                                      ("AMX off (--no-repack)", "amx-off", ("--no-repack",)))}
        runs, _cut = asyncio.run(engines.interleaved(targets, CHATS, ROUNDS))
        prompt_tokens, first = asyncio.run(_first_tokens(targets))
    out["amx"] = {
        "tok_s": {name: {str(n): statistics.median(v) for n, v in per.items()}
                  for name, per in runs.items()},
        "prompt_tokens": prompt_tokens,
        "first_token_ms": {name: statistics.median(v) for name, v in first.items()},
    }


def report_lines(data: dict[str, Any]) -> list[str]:
    if "skipped" in data:
        return [f"llama.cpp's AMX kernels: not measured, {data['skipped']}."]
    on, off = data["tok_s"]["AMX on"], data["tok_s"]["AMX off (--no-repack)"]
    first_on = data["first_token_ms"]["AMX on"]
    first_off = data["first_token_ms"]["AMX off (--no-repack)"]
    lines = [f"llama.cpp's AMX kernels on and off, one llama-server binary, reached directly: "
             f"whole answers, tok/s, median of {ROUNDS} interleaved rounds; first token of a "
             f"{data['prompt_tokens']:,}-token prompt never seen before, median of "
             f"{PROMPT_ROUNDS}:", "",
             "| | AMX on | AMX off | on / off |", "|---|---|---|---|"]
    for n in CHATS:
        lines.append(f"| {n} chat{'s' if n > 1 else ''} | {on[str(n)]:.0f} tok/s | "
                     f"{off[str(n)]:.0f} tok/s | {on[str(n)] / off[str(n)]:.2f}x |")
    lines.append(f"| first token | {first_on:.0f} ms | {first_off:.0f} ms | "
                 f"{first_off / first_on:.2f}x faster |")
    return lines
