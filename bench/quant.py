"""The opt-in Q4_0 copy of the model (CHARLA_MODEL_QUANT=q4_0) against the bundled Q4_1.

Side by side in one run: whole-answer tokens/s at 1 and 8 chats through the gateway with
each file, llama-cpp-python's server (its defaults) on each file, and each file's perplexity
on this repository's English prose (README.md and docs/*.md, 512-token windows, evaluated
by llama-cpp-python), the quality the speed is bought with.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from pathlib import Path
from typing import Any

from bench import engines, procs
from bench.lcp_build import require_working_build
from model_server.engines.llama_server import bundled_model_path
from model_server.requantize import requantized

CHATS = (1, 8)
ROUNDS = 3
WINDOW = 512
ROOT = Path(__file__).resolve().parent.parent


def _rates(targets: dict[str, tuple[str, dict[str, str]]]) -> dict[str, dict[str, float]]:
    """Median tok/s per target and number of chats (keys as strings, as in the JSON)."""
    runs, _cut = asyncio.run(engines.interleaved(targets, CHATS, ROUNDS))
    return {name: {str(n): statistics.median(v) for n, v in per.items()}
            for name, per in runs.items()}


def perplexity(model: Path, text: str) -> tuple[float, int]:
    """exp(mean negative log-likelihood) of ``text``'s tokens, in windows of WINDOW tokens."""
    import numpy as np
    from llama_cpp import Llama

    require_working_build()
    llm = Llama(model_path=str(model), n_ctx=WINDOW, logits_all=True, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False)
    nll, count = 0.0, 0
    for start in range(0, len(tokens) - 1, WINDOW):
        window = tokens[start:start + WINDOW]
        if len(window) < 2:
            break
        llm.reset()
        llm.eval(window)
        logits = np.asarray(llm.scores[:len(window)], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll -= float(logp[np.arange(len(window) - 1), window[1:]].sum())
        count += len(window) - 1
    llm.close()
    return math.exp(nll / count), count


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    print("== the Q4_0 copy against the bundled Q4_1", flush=True)
    original = bundled_model_path()
    copy = requantized(original, logdir / "gateway-q4_0")  # where that gateway looks for it
    files = {"Q4_1 (bundled)": original, "Q4_0 (copy)": copy}
    result: dict[str, Any] = {"llama_cpp_python": {}, "perplexity": {}}
    text = "\n".join(p.read_text() for p in [ROOT / "README.md",
                                             *sorted((ROOT / "docs").glob("*.md"))])
    for name, path in files.items():
        result["perplexity"][name], result["tokens"] = perplexity(path, text)
        with procs.llama_cpp_python_server(logdir, model=path) as url:
            result["llama_cpp_python"][name] = _rates({name: (url, {})})[name]
    headers = {"Authorization": f"Bearer {keys.service_token()}"}
    with procs.gateway(keys, logdir) as (gw_q4_1, _), \
            procs.gateway(keys, logdir, home="gateway-q4_0", CHARLA_MODEL_QUANT="q4_0"
                          ) as (gw_q4_0, _):
        result["gateway"] = _rates({"Q4_1 (bundled)": (gw_q4_1, headers),
                                    "Q4_0 (copy)": (gw_q4_0, headers)})
    out["quant"] = result


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"The Q4_0 copy (CHARLA_MODEL_QUANT=q4_0) against the bundled Q4_1: whole answers, "
             f"tok/s, median of {ROUNDS} rounds; perplexity over {data['tokens']:,} tokens of "
             "README.md and docs/*.md:", "",
             "| model file | perplexity | llama-cpp-python 1 chat | 8 chats | gateway 1 chat "
             "| 8 chats | gateway / llama-cpp-python at 8 (same file) |",
             "|---|---|---|---|---|---|---|"]
    for name, ppl in data["perplexity"].items():
        lcp, gw = data["llama_cpp_python"][name], data["gateway"][name]
        lines.append(f"| {name} | {ppl:.1f} | {lcp['1']:.0f} | {lcp['8']:.0f} | "
                     f"{gw['1']:.0f} | {gw['8']:.0f} | {gw['8'] / lcp['8']:.2f}x |")
    return lines
