"""Validation of OpenAI-style chat requests, shared by the API and the model server's gateway.

Both are trust boundaries, so both check; the checks are plain functions over dicts with
messages that say exactly which field is wrong. Only the fields we pass on are kept: an
unknown field is ignored, as OpenAI's own API does, but never forwarded to the engine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from shared.chat import Message
from shared.errors import BadRequest

MAX_MESSAGES = 1_000
MAX_STOP_SEQUENCES = 4
_ROLES = ("system", "user", "assistant", "developer", "tool")


@dataclass
class ChatRequest:
    """A validated chat completion request."""

    messages: list[Message]
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Charla's extension: the knowledge-base collections to answer from (None: all the caller
    # may read; []: none). Never sent to the engine.
    collections: list[str] | None = None

    def engine_body(self, model: str, max_tokens: int) -> dict[str, Any]:
        """The body sent to an OpenAI-compatible engine (usage always asked for)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": self.messages,
            "max_tokens": max_tokens,
            "stream": self.stream,
        }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.stop:
            body["stop"] = self.stop
        return body


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object."""
    if not raw:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # The array form: only text parts are supported by the models we serve.
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(f"{where}: only text content parts are supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{where}: a text part needs a string 'text'")
            texts.append(text)
        return "".join(texts)
    if content is None:
        raise BadRequest(f"{where}.content is required")
    raise BadRequest(f"{where}.content must be a string or a list of text parts")


def _messages(value: Any) -> list[Message]:
    if not isinstance(value, list):
        raise BadRequest("'messages' must be a list of messages")
    if not value:
        raise BadRequest("'messages' must not be empty")
    if len(value) > MAX_MESSAGES:
        raise BadRequest(f"'messages' holds more than {MAX_MESSAGES} messages")
    out: list[Message] = []
    for i, item in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object with 'role' and 'content'")
        role = item.get("role")
        if role not in _ROLES:
            raise BadRequest(f"{where}.role must be one of {', '.join(_ROLES)}")
        if role == "tool":
            raise BadRequest(f"{where}: tool messages are not supported")
        text = _content_text(item.get("content"), where)
        out.append({"role": "system" if role == "developer" else role, "content": text})
    if out[-1]["role"] == "assistant":
        raise BadRequest("the last message must come from the user or the system")
    return out


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"'{name}' must be a number")
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be between {low:g} and {high:g}")
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be a whole number")
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be between {low} and {high}")
    return value


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("'stop' must be a non-empty string or a list of them")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise BadRequest(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences")
    return list(stops)


def parse_chat_request(body: dict[str, Any], *, max_tokens_cap: int) -> ChatRequest:
    """Validate a chat completion request body; raise :class:`BadRequest` saying what is wrong."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object")
    n = body.get("n", 1)
    if n != 1:
        raise BadRequest("only 'n': 1 is supported")
    max_tokens = _integer(body, "max_completion_tokens", 1, max_tokens_cap)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, max_tokens_cap)
    seed = _integer(body, "seed", -(2**63), 2**63 - 1)
    collections = body.get("collections")
    if collections is not None and not (
            isinstance(collections, list)
            and all(isinstance(c, str) and c for c in collections)):
        raise BadRequest("'collections' must be a list of collection names")
    return ChatRequest(
        messages=_messages(body.get("messages")),
        model=model,
        stream=stream,
        include_usage=bool(options and options.get("include_usage")),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        stop=_stop(body.get("stop")),
        seed=seed,
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0),
        collections=collections,
    )


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, so OpenAI clients raise their usual exceptions."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
