"""Tool calls for an engine whose model has no tool format: built from JSON the engine is held to.

The bundled model's chat template knows nothing of tools, and asked for one in words a small
model answers in words (measured: llama-server with ``--jinja`` gave plain text, finish reason
``length``, for ``tool_choice: required``). So the gateway describes the tools in a system
message and holds the answer to a JSON schema the choice allows (llama.cpp makes it a grammar,
as for ``response_format``):

- one function named: its parameters, which are the call's arguments;
- ``required``: ``{"name": <one of the tools>, "arguments": <its parameters>}``;
- ``auto``: that, or ``{"answer": "<text>"}``, a plain answer.

The JSON is then turned into OpenAI's answer: ``tool_calls`` (an id, the name, the arguments as
a JSON string) with ``finish_reason: "tool_calls"``, or the text. One call per answer
(``parallel_tool_calls`` asks that more be allowed, not that they be made). A stream is written
from the whole answer, in OpenAI's chunks (the call's id and name, then its arguments in
pieces, then the finish reason): the call is known only once its JSON is complete.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from shared.tools_schema import Tools

_REMOVED = ("tools", "tool_choice", "parallel_tool_calls")
ARGUMENT_PIECE = 24  # characters of arguments per streamed chunk


def _call_schema(tools: Tools) -> list[dict[str, Any]]:
    return [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
             "properties": {"name": {"const": t.name}, "arguments": t.parameters}}
            for t in tools.tools]


def answer_schema(tools: Tools) -> dict[str, Any]:
    """The JSON the engine is held to, for the choice ``tools`` makes."""
    if tools.function is not None:
        return tools.function.parameters
    calls = _call_schema(tools)
    if tools.choice == "required":
        return calls[0] if len(calls) == 1 else {"anyOf": calls}
    answer = {"type": "object", "additionalProperties": False, "required": ["answer"],
              "properties": {"answer": {"type": "string"}}}
    return {"anyOf": [answer, *calls]}


def instructions(tools: Tools) -> str:
    lines = ["You can call these functions. To call one, answer with its name and arguments "
             "as JSON."]
    for tool in tools.tools:
        described = f": {tool.description}" if tool.description else ""
        lines.append(f"- {tool.name}{described}. Arguments: "
                     f"{json.dumps(tool.parameters, ensure_ascii=False)}")
    if tools.function is not None:
        lines.append(f"Call {tools.function.name} now: answer with its arguments only.")
    elif tools.choice == "required":
        lines.append("Call one of them now.")
    else:
        lines.append('If no function helps, answer {"answer": "<your answer>"}.')
    return "\n".join(lines)


def engine_request(body: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """``body`` for the engine: the tools described first, the answer held to their schema,
    asked whole (a stream is written from it, :func:`as_events`)."""
    out = {k: v for k, v in body.items() if k not in (*_REMOVED, "stream_options")}
    messages = list(out["messages"])
    told = instructions(tools)
    if messages and messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{told}"}
    else:
        messages.insert(0, {"role": "system", "content": told})
    out["messages"] = messages
    out["stream"] = False
    out["response_format"] = {"type": "json_schema",
                              "json_schema": {"name": "answer", "schema": answer_schema(tools)}}
    return out


def with_tool_calls(result: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """The engine's answer as OpenAI gives one: the call it made, or its text. No call is made
    of half a JSON: an answer cut short (``length``) is its text so far when it was a plain
    answer, else what the engine wrote."""
    choice = (result.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    if choice.get("finish_reason") != "stop":
        text = _answer_so_far(str(message.get("content") or ""))
        if text is not None and tools.choice == "auto":
            choice["message"] = {"role": "assistant", "content": text}
        return result
    try:
        value = json.loads(message.get("content") or "")
    except ValueError:
        return result
    named = tools.function
    if not isinstance(value, dict):
        return result  # the schema asks for an object: an engine that ignored it is shown as is
    if named is None and "answer" in value:
        choice["message"] = {"role": "assistant", "content": str(value["answer"])}
        return result
    name, arguments = ((named.name, value) if named is not None
                       else (value.get("name"), value.get("arguments")))
    choice["message"] = {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_" + secrets.token_hex(12), "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False,
                                                           separators=(",", ":"))}}]}
    choice["finish_reason"] = "tool_calls"
    return result


def _answer_so_far(content: str) -> str | None:
    """The text of a plain answer (``{"answer": "..."}``) the engine stopped writing."""
    for ending in ('"}', '}', '\\"}'):  # cut inside the string, after it, or in an escape
        try:
            value = json.loads(content + ending)
        except ValueError:
            continue
        if isinstance(value, dict) and set(value) == {"answer"}:
            return str(value["answer"])
    return None


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def as_events(result: dict[str, Any], *, include_usage: bool) -> AsyncIterator[bytes]:
    """A whole answer as OpenAI streams one: a call's id and name, its arguments in pieces and
    the finish reason; or the text in one chunk; then the usage, when asked, and ``[DONE]``."""
    choice = (result.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    head = {"id": result.get("id") or "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion.chunk", "created": result.get("created", int(time.time())),
            "model": result.get("model")}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event({**head, "choices": [{"index": 0, "delta": delta,
                                            "finish_reason": finish, "logprobs": None}]})

    calls = message.get("tool_calls")
    if calls:
        yield chunk({"role": "assistant", "content": None})
        for i, call in enumerate(calls):
            yield chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"],
                                                      "arguments": ""}}]})
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), ARGUMENT_PIECE):
                piece = arguments[start:start + ARGUMENT_PIECE]
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    else:
        yield chunk({"role": "assistant", "content": message.get("content") or ""})
    yield chunk({}, choice.get("finish_reason") or "stop")
    if include_usage and result.get("usage"):
        yield _event({**head, "choices": [], "usage": result["usage"]})
    yield b"data: [DONE]\n\n"
