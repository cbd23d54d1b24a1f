"""Relaying the model server's event stream to an API client while keeping what it said.

The answer is assembled for the audit log as it passes; the final usage-only chunk is kept
for the log and forwarded only to clients that asked for it (``stream_options.include_usage``),
as OpenAI's API does. An error event from the model server (its engine failed mid-answer)
is passed on in the API's own shape, the one every broken stream ends with
(:func:`shared.openai_schema.error_event`).
"""

from __future__ import annotations

import json
from typing import Any

from shared.openai_schema import error_event

# The codes a stream broken after its 200 ends with, as README promises API clients.
TIMEOUT = "model_server_timeout"
UNAVAILABLE = "model_server_unavailable"


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
        self.deltas = 0  # events that carried text: the tokens written, until usage says
        self.error: str | None = None
        self.error_code: str | None = None  # set with error, from the model server's event

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
        return b"".join(self._out(event) for event in events)

    def feed_each(self, chunk: bytes | None) -> list[tuple[bytes, int | None]]:
        """What to forward of each whole event in ``chunk`` (None: the end, what is left),
        with the answer's length once that event is in, or None from the event that finishes
        the answer on (it and what follows wait for the end)."""
        if chunk is None:
            rest, self._buffer = self._buffer, b""
            events = [rest] if rest.strip() else []
        else:
            self._buffer += chunk
            if b"\n\n" not in self._buffer:
                return []
            *events, self._buffer = self._buffer.split(b"\n\n")
        out: list[tuple[bytes, int | None]] = []
        for event in events:
            data = self._out(event)
            if data:
                out.append((data, None if self.finish_reason else len(self.answer)))
        return out

    def flush(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return self._out(rest) if rest.strip() else b""

    def _out(self, event: bytes) -> bytes:
        """What the client gets of one upstream event (nothing, the event, or ours)."""
        failed = self.error_code is not None
        if not self._keep(event):
            return b""
        if self.error_code is not None and not failed:  # this event is the failure
            assert self.error is not None
            return error_event(self.error, self.error_code)
        return event + b"\n\n"

    def _called(self, call: Any) -> None:
        """A tool call's delta, read as the answer's text (``name(`` and its arguments, as for a
        whole answer in functions/api/routes.py), so that the checks read what the model passes
        to a tool, and the audit log keeps it."""
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            return
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(name, str) and name:
            self._parts.append(f"{name}(")
        if isinstance(arguments, str) and arguments:
            self._parts.append(arguments)
            self.deltas += 1

    def _keep(self, event: bytes) -> bool:
        payload = event.strip().removeprefix(b"data:").strip()
        if not payload or payload == b"[DONE]":
            return bool(payload)
        try:
            data: dict[str, Any] = json.loads(payload)
        except ValueError:
            return True
        if "error" in data:
            if self.error_code is not None:
                return False  # one error ends a stream
            err = data["error"]
            detail = err if isinstance(err, dict) else {"message": err}
            self.error = str(detail.get("message") or "the model server failed")[:300]
            self.error_code = TIMEOUT if "timeout" in str(detail.get("code")) else UNAVAILABLE
            return True
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")
        choices = data.get("choices") or []
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self._parts.append(content)
                self.deltas += 1
            for call in delta.get("tool_calls") or ():
                self._called(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if not choices and usage is not None:
            return self._forward_usage
        return True
