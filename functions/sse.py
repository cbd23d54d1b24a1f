"""Relaying the model server's event stream to an API client while keeping what it said.

The answer is assembled for the audit log as it passes; the final usage-only chunk is kept
for the log and forwarded only to clients that asked for it (``stream_options.include_usage``),
as OpenAI's API does.
"""

from __future__ import annotations

import json
from typing import Any


class StreamRecorder:
    """Feed it raw bytes; it returns the bytes to forward and remembers the answer."""

    def __init__(self, *, forward_usage: bool) -> None:
        self._forward_usage = forward_usage
        self._buffer = b""
        self._parts: list[str] = []  # pieces not yet added to _answer
        self._answer = ""
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.error: str | None = None

    @property
    def answer(self) -> str:
        """The answer so far. Read after every event by the moderation check, so it joins only
        the pieces that came since the last read (joining them all each time costs a long
        answer more per token the longer it gets)."""
        if self._parts:
            self._answer += "".join(self._parts)
            self._parts.clear()
        return self._answer

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        if b"\n\n" not in self._buffer:
            return b""
        *events, self._buffer = self._buffer.split(b"\n\n")
        return b"".join(self._out(event) for event in events if self._keep(event))

    def flush(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return self._out(rest) if rest.strip() and self._keep(rest) else b""

    def _out(self, event: bytes) -> bytes:
        return event + b"\n\n"

    def _keep(self, event: bytes) -> bool:
        payload = event.strip().removeprefix(b"data:").strip()
        if not payload or payload == b"[DONE]":
            return bool(payload)
        try:
            data: dict[str, Any] = json.loads(payload)
        except ValueError:
            return True
        if "error" in data:
            err = data["error"]
            self.error = str(err.get("message") if isinstance(err, dict) else err)[:300]
            return True
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")
        choices = data.get("choices") or []
        for choice in choices:
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str):
                self._parts.append(content)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if not choices and usage is not None:
            return self._forward_usage
        return True
