"""Reading an engine's "prompt too long" answer, to fit the prompt again with real counts.

The prompt is first fitted with an estimate (shared.chat); engines count with their own
tokenizer and refuse a prompt that does not fit. Their refusals name the real count, in a
phrasing per engine; we read it and fit once more, scaled by what the estimate missed.
"""

from __future__ import annotations

import re

# llama.cpp: "request (5095 tokens) exceeds the available context size (4096 tokens)"
# vLLM:      "... maximum context length is 4096 tokens. However, you requested 5095 tokens"
# TGI:       "... must be <= 4096. Given: 5000 `inputs` tokens and 95 `max_new_tokens`"
_PATTERNS = (
    re.compile(r"request \((\d+) tokens\)"),
    re.compile(r"you requested (\d+) tokens"),
    re.compile(r"Given: (\d+) `inputs` tokens"),
)

FALLBACK_SCALE = 2.0


def overflow_scale(message: str, estimated: int) -> float:
    """How much to scale estimates by, given the engine's refusal and our own estimate."""
    for pattern in _PATTERNS:
        match = pattern.search(message)
        if match and estimated > 0:
            # A little margin: the retry must fit, not land on the edge again.
            return max(1.0, int(match.group(1)) / estimated) * 1.05
    return FALLBACK_SCALE
