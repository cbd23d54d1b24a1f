"""Tool calls for an engine whose model has no tool format: built from JSON the engine is held to.

The bundled model's chat template knows nothing of tools, and asked for one in words a small
model answers in words (measured: llama-server with ``--jinja`` gave plain text, finish reason
``length``, for ``tool_choice: required``). So the gateway describes the tools in a system
message and holds the answer to a JSON schema the choice allows (llama.cpp makes it a grammar,
as for ``response_format``):

- one function named: its parameters, which are the call's arguments;
- ``required``: ``{"name": <one of the tools>, "arguments": <its parameters>}``, or, when
  the request sets ``parallel_tool_calls`` to true, several at once: ``{"calls": [<call>,
  <call>, ...]}`` (2 to :data:`MAX_CALLS`). Without it, one call: OpenAI's default is
  several, but the bundled model, asked one thing with two tools at hand, added a stray call
  ("How hot is it in Madrid today?": the weather in Madrid and the time in UTC) in 2 of 10
  answers when it could, and in none when it could not;
- ``auto``: one of those, or ``{"answer": "<text>"}``, a plain answer.

The JSON is then turned into OpenAI's answer: ``tool_calls`` (an id each, the name, the
arguments as a JSON string) with ``finish_reason: "tool_calls"``, or the text. A function
named in ``tool_choice`` is called once, as OpenAI does. A streamed answer is read as the
engine writes it (model_server/tools_stream.py): each call's index, id and name once its name
is written, then its arguments as they come, then the finish reason. :func:`as_events` writes
a whole answer in those chunks, for an engine that wrote its keys in another order.
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
MAX_CALLS = 8  # calls in one answer, where parallel_tool_calls allows several


def _call_schema(tools: Tools) -> list[dict[str, Any]]:
    return [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
             "properties": {"name": {"const": t.name}, "arguments": t.parameters}}
            for t in tools.tools]


def answer_schema(tools: Tools) -> dict[str, Any]:
    """The JSON the engine is held to, for the choice ``tools`` makes."""
    if tools.function is not None:
        return tools.function.parameters
    calls = _call_schema(tools)
    one = calls[0] if len(calls) == 1 else {"anyOf": calls}
    options = [*calls]
    if tools.parallel:
        options.append({"type": "object", "additionalProperties": False, "required": ["calls"],
                        "properties": {"calls": {"type": "array", "items": one, "minItems": 2,
                                                 "maxItems": MAX_CALLS}}})
    if tools.choice == "auto":
        options.insert(0, {"type": "object", "additionalProperties": False,
                           "required": ["answer"], "properties": {"answer": {"type": "string"}}})
    return options[0] if len(options) == 1 else {"anyOf": options}


def instructions(tools: Tools) -> str:
    lines = ["You can call these functions. To call one, answer with its name and arguments "
             "as JSON."]
    for tool in tools.tools:
        described = f": {tool.description}" if tool.description else ""
        lines.append(f"- {tool.name}{described}. Arguments: "
                     f"{json.dumps(tool.parameters, ensure_ascii=False)}")
    if tools.function is not None:
        lines.append(f"Call {tools.function.name} now: answer with its arguments only.")
    else:
        if tools.parallel:
            lines.append('To call several at once, answer {"calls": [<call>, <call>]}.')
        lines.append("Call one of them now." if tools.choice == "required"
                     else 'If no function helps, answer {"answer": "<your answer>"}.')
    return "\n".join(lines)


def engine_request(body: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """``body`` for the engine: the tools described first, the answer held to their schema
    (streamed when asked, model_server/tools_stream.py)."""
    out = {k: v for k, v in body.items() if k not in _REMOVED}
    messages = list(out["messages"])
    told = instructions(tools)
    if messages and messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{told}"}
    else:
        messages.insert(0, {"role": "system", "content": told})
    out["messages"] = messages
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
    made: list[tuple[Any, Any]]
    if named is not None:
        made = [(named.name, value)]
    else:
        listed = value["calls"] if isinstance(value.get("calls"), list) else [value]
        made = [(c.get("name"), c.get("arguments")) for c in listed if isinstance(c, dict)]
    choice["message"] = {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_" + secrets.token_hex(12), "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False,
                                                           separators=(",", ":"))}}
        for name, arguments in made]}
    choice["finish_reason"] = "tool_calls"
    return result


def _answer_so_far(content: str) -> str | None:
    """The text of a plain answer (``{"answer": "..."}``) the engine stopped writing."""
    # Cut inside the string, after it, in an escape, or whole as the last token came.
    for ending in ('"}', '}', '\\"}', ''):
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
