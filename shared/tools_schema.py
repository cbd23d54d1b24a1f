"""Tools in a chat request (OpenAI's ``tools``, ``tool_choice``, ``parallel_tool_calls``), and
the conversation that carries their calls and results, checked at both boundaries.

A tool is a function: a name OpenAI would take, a description, its parameters as JSON Schema
(shared/response_format.py checks it). ``tool_choice``: ``none`` (answer in text), ``auto``
(the model chooses), ``required`` (call one), or one function by name. The conversation that
follows a call carries the assistant's ``tool_calls`` and a ``tool`` message with each result;
a result must answer a call made before it (by ``tool_call_id``), and is shown to the model as
a turn of text naming the call, since the models served need no format of their own for it
(model_server/tools.py builds the calls from the engine's JSON).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.chat import Message
from shared.errors import BadRequest
from shared.response_format import check_schema

MAX_TOOLS = 128  # OpenAI's limit
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHOICES = ("none", "auto", "required")


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Tools:
    """The tools a request offers, and how the answer may use them."""

    tools: tuple[Tool, ...]
    choice: str  # "auto" or "required"; "function": call ``function``
    function: Tool | None = None  # the one function to call, when the request names it
    # Several calls in one answer: only when the request sets parallel_tool_calls to true.
    # OpenAI's default is true; Charla's is one call, since a small model asked for one thing
    # makes a second, stray call when it may (model_server/tools.py).
    parallel: bool = False

    def offered(self) -> list[dict[str, Any]]:
        """``tools`` as OpenAI's request carries it (what the gateway is sent)."""
        return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters}}
                for t in self.tools]

    def choice_field(self) -> str | dict[str, Any]:
        if self.function is None:
            return self.choice
        return {"type": "function", "function": {"name": self.function.name}}


def _tool(value: Any, i: int) -> Tool:
    where = f"tools[{i}]"
    if not isinstance(value, dict) or value.get("type") != "function":
        raise BadRequest(f"{where} must be {{\"type\": \"function\", \"function\": {{...}}}}",
                         "tools")
    function = value.get("function")
    if not isinstance(function, dict):
        raise BadRequest(f"{where}.function must be an object with a 'name'", "tools")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadRequest(f"{where}.function.name must be 1 to 64 letters, digits, _ or -",
                         "tools")
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise BadRequest(f"{where}.function.description must be a string", "tools")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    try:
        check_schema(parameters, f"{where}.function.parameters")
    except BadRequest as exc:
        raise BadRequest(str(exc), "tools") from None
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise BadRequest(f"{where}.function.parameters must be an object schema", "tools")
    return Tool(name, description, parameters)


def parse_tools(body: dict[str, Any]) -> Tools | None:
    """The tools a request offers and may use; None when it asks for a text answer only
    (none offered, or ``tool_choice: "none"``)."""
    raw = body.get("tools")
    choice = body.get("tool_choice")
    if raw is None or raw == []:
        if choice not in (None, "none"):
            raise BadRequest("'tool_choice' needs 'tools'", "tool_choice")
        return None
    if not isinstance(raw, list):
        raise BadRequest("'tools' must be a list of functions", "tools")
    if len(raw) > MAX_TOOLS:
        raise BadRequest(f"'tools' holds more than {MAX_TOOLS} functions", "tools")
    tools = tuple(_tool(value, i) for i, value in enumerate(raw))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise BadRequest("'tools' names a function twice", "tools")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise BadRequest("'parallel_tool_calls' must be true or false", "parallel_tool_calls")
    if choice is None:
        choice = "auto"
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise BadRequest("'tool_choice' must be 'none', 'auto', 'required' or "
                             "{\"type\": \"function\", \"function\": {\"name\": ...}}",
                             "tool_choice")
        function = next((t for t in tools if t.name == name), None)
        if function is None:
            raise BadRequest(f"'tool_choice' names {name!r}, which 'tools' does not offer",
                             "tool_choice")
        return Tools(tools, "function", function, parallel is True)
    if choice not in CHOICES:
        shown = repr(choice)[:80] if isinstance(choice, str) else type(choice).__name__
        raise BadRequest(f"'tool_choice' is {shown}: it must be 'none', 'auto', 'required' or "
                         "{\"type\": \"function\", \"function\": {\"name\": ...}} naming one of "
                         "'tools'", "tool_choice")
    if choice == "none":
        return None
    return Tools(tools, choice, None, parallel is True)


def _calls(value: Any, where: str) -> list[tuple[str, str, str]]:
    """An assistant message's ``tool_calls``: (id, name, arguments) each."""
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{where}.tool_calls must be a non-empty list", "messages")
    calls = []
    for j, call in enumerate(value):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(function, dict):
            raise BadRequest(f"{at} must have an 'id' and a 'function'", "messages")
        ident, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        if not isinstance(ident, str) or not ident:
            raise BadRequest(f"{at}.id must be a non-empty string", "messages")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{at}.function.name must be a non-empty string", "messages")
        if not isinstance(arguments, str):
            raise BadRequest(f"{at}.function.arguments must be a string of JSON", "messages")
        calls.append((ident, name, arguments))
    return calls


class Conversation:
    """The tool calls a conversation made, so that each ``tool`` message answers one."""

    def __init__(self) -> None:
        self.calls: dict[str, str] = {}  # id -> name

    def assistant(self, item: dict[str, Any], where: str, text: str | None) -> Message:
        """An assistant turn; with ``tool_calls``, the calls written after its text."""
        if not item.get("tool_calls"):  # absent, null or []: a turn of text
            if text is None:
                raise BadRequest(f"{where}.content is required", "messages")
            return {"role": "assistant", "content": text}
        lines = [text] if text else []
        for ident, name, arguments in _calls(item["tool_calls"], where):
            self.calls[ident] = name
            lines.append(f"[called {name} with {arguments} (call {ident})]")
        return {"role": "assistant", "content": "\n".join(lines)}

    def result(self, item: dict[str, Any], where: str, text: str | None) -> Message:
        """A ``tool`` message: the result of a call made before, as a turn of text."""
        ident = item.get("tool_call_id")
        if not isinstance(ident, str) or ident not in self.calls:
            raise BadRequest(f"{where}.tool_call_id must name a call an earlier assistant "
                             "message made", "messages")
        if text is None:
            raise BadRequest(f"{where}.content is required", "messages")
        return {"role": "user",
                "content": f"[result of {self.calls[ident]} (call {ident})]: {text}"}

