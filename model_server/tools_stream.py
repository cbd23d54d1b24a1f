"""A streamed tool answer as the engine writes it (model_server/tools.py builds whole ones).

The engine is held to the JSON that model_server/tools.py asks for, written from its first
key, so its text can be read as it comes: ``{"name": "f", "arguments": {...}}`` (or
``{"calls": [...]}`` of those) becomes each call's id and name once its name is written, then
its arguments piece by piece as the engine writes them; ``{"answer": "..."}`` becomes the
answer's text; with a function named in ``tool_choice`` the text is that call's arguments
from the first token. An agent sees a long argument (a file, a query) grow, as OpenAI streams
one, rather than all of it at the end.

An engine that writes the keys in another order than the schema's (``arguments`` before
``name``) is read whole at the end instead, as a whole answer is.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

from model_server.tools import as_events, with_tool_calls
from shared.tools_schema import Tools

_OPENING = re.compile(r'\s*\{\s*"(name|answer|calls)"\s*:\s*')
_NAME = re.compile(r'\s*"([A-Za-z0-9_-]{1,64})"\s*,\s*"arguments"\s*:\s*')
_NEXT = re.compile(r"\s*(,|\])")
_CALL = re.compile(r'\s*\{\s*"name"\s*:\s*')
_CALLS = re.compile(r"\s*\[")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_UNSURE = 64  # characters read without knowing the answer's shape: read it whole instead


class Writer:
    """Reads the engine's JSON as it is written; :meth:`feed` gives OpenAI's deltas for it."""

    def __init__(self, tools: Tools) -> None:
        self._tools = tools
        self._rest = ""  # text not read yet
        self.text = ""  # all the engine wrote
        self.calls = 0  # calls begun
        self.answered = False  # a plain answer was begun
        self.whole = False  # its shape was not the schema's order: read whole at the end
        self._state = "args" if tools.function is not None else "open"
        self._in_calls = False
        self._depth = 0
        self._quoted = False
        self._escaped = False
        self._role_sent = False
        self._out: list[dict[str, Any]] = []  # deltas not given out yet
        if tools.function is not None:
            self._begin_call(tools.function.name)

    def feed(self, text: str) -> list[dict[str, Any]]:
        self.text += text
        if not self.whole:
            self._rest += text
            while self._step():
                pass
        out, self._out = self._out, []
        return out

    # Each state reads what it can of ``_rest``; True when it moved on (read again).

    def _step(self) -> bool:
        state = self._state
        if state == "open":
            m = _OPENING.match(self._rest)
            if m is None:
                if len(self._rest) > _UNSURE or (self._rest.strip() and not _could_open(
                        self._rest)):
                    self.whole = True
                return False
            self._rest = self._rest[m.end():]
            self._state = {"name": "name", "answer": "answer-open", "calls": "calls"}[m[1]]
            return True
        if state == "calls":
            m = _CALLS.match(self._rest)
            if m is None:
                return False
            self._rest, self._in_calls, self._state = self._rest[m.end():], True, "call"
            return True
        if state == "call":
            m = _CALL.match(self._rest)
            if m is None:
                return False
            self._rest, self._state = self._rest[m.end():], "name"
            return True
        if state == "name":
            m = _NAME.match(self._rest)
            if m is None:
                if len(self._rest) > _UNSURE:
                    # Not a call as asked: read whole at the end, unless calls went out.
                    self.whole = not self._role_sent
                    self._state = "done"
                return False
            self._rest = self._rest[m.end():]
            self._begin_call(m[1])
            self._state = "args"
            return True
        if state == "args":
            return self._arguments()
        if state == "after":  # a call's object closes; in a list, another may follow
            m = _NEXT.match(self._rest.lstrip().removeprefix("}"))
            if not self._in_calls or m is None:
                return False
            self._rest = self._rest.lstrip().removeprefix("}")[m.end():]
            self._state = "call" if m[1] == "," else "done"
            return True
        if state == "answer-open":
            stripped = self._rest.lstrip()
            if not stripped:
                return False
            self._rest, self._state = stripped[1:], "answer"
            self.answered = True
            return True
        if state == "answer":
            return self._answer()
        return False

    def _begin_call(self, name: str) -> None:
        call = {"index": self.calls, "id": "call_" + secrets.token_hex(12), "type": "function",
                "function": {"name": name, "arguments": ""}}
        self._delta({"tool_calls": [call]}, content=None)
        self.calls += 1
        self._depth, self._quoted, self._escaped = 0, False, False

    def _arguments(self) -> bool:
        """The arguments' text up to the end of their object (brackets counted outside
        strings)."""
        if self._depth == 0:  # the spaces before the arguments' object are not theirs
            self._rest = self._rest.lstrip()
        end = None
        for i, c in enumerate(self._rest):
            if self._escaped:
                self._escaped = False
            elif self._quoted:
                self._escaped = c == "\\"
                self._quoted = c != '"'
            elif c == '"':
                self._quoted = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
                if self._depth == 0:
                    end = i + 1
                    break
        piece = self._rest if end is None else self._rest[:end]
        if piece.strip() or (piece and self._depth):
            self._delta({"tool_calls": [{"index": self.calls - 1,
                                         "function": {"arguments": piece}}]})
        if end is None:
            self._rest = ""
            return False
        self._rest = self._rest[end:]
        self._state = "done" if self._tools.function is not None else "after"
        return True

    def _answer(self) -> bool:
        """The plain answer's text, its JSON escapes undone, up to its closing quote."""
        out: list[str] = []
        i, rest = 0, self._rest
        while i < len(rest):
            c = rest[i]
            if c == '"':
                self._state = "done"
                i += 1
                break
            if c != "\\":
                out.append(c)
                i += 1
                continue
            if i + 1 >= len(rest):
                break  # the escape's next character has not come yet
            if rest[i + 1] != "u":
                out.append(_ESCAPES.get(rest[i + 1], rest[i + 1]))
                i += 2
                continue
            if i + 6 > len(rest):
                break
            code = int(rest[i + 2:i + 6], 16) if _hex(rest[i + 2:i + 6]) else 0xFFFD
            i += 6
            if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                if i + 6 > len(rest):
                    i -= 6
                    break
                low = int(rest[i + 2:i + 6], 16) if rest[i:i + 2] == "\\u" and _hex(
                    rest[i + 2:i + 6]) else 0
                if 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                else:
                    code = 0xFFFD
            out.append(chr(code) if not 0xD800 <= code < 0xE000 else "\ufffd")
        self._rest = rest[i:]
        if out:
            self._delta({"content": "".join(out)})
        return False

    def _delta(self, delta: dict[str, Any], **first: Any) -> None:
        if not self._role_sent:
            delta = {"role": "assistant", **first, **delta}
            self._role_sent = True
        self._out.append(delta)


def _could_open(text: str) -> bool:
    """Whether ``text`` may still become the start of ``{"name"``, ``{"answer"`` or
    ``{"calls"`` as more of it comes."""
    squeezed = re.sub(r"\s+", "", text)
    return any(w.startswith(squeezed) or squeezed.startswith(w)
               for w in ('{"name"', '{"answer"', '{"calls"'))


def _hex(text: str) -> bool:
    return len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text)


async def as_written(events: AsyncIterator[bytes], tools: Tools) -> AsyncIterator[bytes]:
    """The engine's streamed events, its JSON turned into OpenAI's deltas as it comes (see
    the module's docstring); the usage chunk, errors and ``[DONE]`` pass as they are."""
    writer = Writer(tools)
    head: dict[str, Any] = {}
    try:
        async for chunk in events:
            out = []
            for event in chunk.split(b"\n\n"):
                payload = event.strip().removeprefix(b"data:").strip()
                if not payload:
                    continue
                try:
                    data = json.loads(payload) if payload.startswith(b"{") else None
                except ValueError:
                    data = None
                if data is None or "error" in data or not data.get("choices"):
                    out.append(event.strip() + b"\n\n")  # usage, an error, [DONE], other
                    continue
                head = head or {k: data.get(k) for k in ("id", "created", "model")}
                choice = data["choices"][0]
                content = (choice.get("delta") or {}).get("content")
                deltas = writer.feed(content) if isinstance(content, str) and content else []
                out += [_chunk(head, d) for d in deltas]
                finish = choice.get("finish_reason")
                if finish:
                    if writer.whole:
                        out += [e async for e in _whole(writer.text, finish, head, tools)]
                    else:
                        called = writer.calls and finish == "stop"
                        out.append(_chunk(head, {}, "tool_calls" if called else finish))
            if out:
                yield b"".join(out)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _whole(text: str, finish: str, head: dict[str, Any], tools: Tools
                 ) -> AsyncIterator[bytes]:
    """The answer read whole, as a whole answer is streamed (the engine's own usage chunk
    and ``[DONE]`` follow)."""
    result = {**head, "choices": [{"index": 0, "finish_reason": finish,
                                   "message": {"role": "assistant", "content": text}}]}
    async for event in as_events(with_tool_calls(result, tools), include_usage=False):
        if event != b"data: [DONE]\n\n":
            yield event


def _chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {**head, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": None}]}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
