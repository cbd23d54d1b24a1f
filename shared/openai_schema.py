"""Validation of OpenAI-style chat requests, shared by the API and the model server's gateway.

Both are trust boundaries, so both check; the checks are plain functions over dicts with
messages that say exactly which field is wrong (and name it in OpenAI's ``param``). A field
asking for what we cannot give (several choices, audio)
is refused, never silently dropped, since the client would misread the answer. Any other field
we do not use is ignored: OpenAI's hints to its own service (``user``, ``store``,
``service_tier``...) and other engines' sampling knobs (``top_k``, ``min_p``), which clients
written for llama.cpp or vLLM send, change nothing a client reads back. Only the fields we
pass on ever reach the engine. ``null`` means unset.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from shared.chat import Message
from shared.errors import BadRequest
from shared.knowledge.names import collection_name
from shared.response_format import parse_response_format
from shared.text import find_surrogate, may_hold_surrogates, repair_surrogates
from shared.tools_schema import Conversation, Tools, parse_tools

MAX_MESSAGES = 1_000
MAX_STOP_SEQUENCES = 4
_ROLES = ("system", "user", "assistant", "developer", "tool")

MAX_TOP_LOGPROBS = 20  # OpenAI's own bound


def _refuse(what: str, name: str) -> BadRequest:
    return BadRequest(f"{what} is not supported: remove '{name}' from the request", name)


def _check_unsupported(body: dict[str, Any]) -> None:
    """Refuse what asks for an answer we cannot give; the harmless values pass."""
    if body.get("functions"):  # null or [] asks for nothing; "tools" replaced it
        raise _refuse("function calling (OpenAI's older form: use 'tools')", "functions")
    if body.get("function_call") not in (None, "none"):
        raise _refuse("function calling (OpenAI's older form: use 'tool_choice')",
                      "function_call")
    if body.get("logit_bias"):  # null or {} changes nothing
        raise _refuse("logit bias", "logit_bias")
    if body.get("modalities") not in (None, ["text"]):
        raise _refuse("an output other than text", "modalities")
    for name, what in (("audio", "audio output"), ("prediction", "predicted output"),
                       ("web_search_options", "web search")):
        if body.get(name) is not None:
            raise _refuse(what, name)


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
    # A structured answer (shared/response_format.py), as the engine takes it; None: text.
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    tools: Tools | None = None  # the functions the answer may call (shared/tools_schema.py)

    @property
    def structured(self) -> bool:
        """Whether the answer is JSON the engine is constrained to, or tool calls built from
        it: no text of ours may start or replace it."""
        return self.response_format is not None or self.tools is not None

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
        if self.response_format is not None:
            body["response_format"] = self.response_format
        if self.tools is not None:
            body["tools"] = self.tools.offered()
            body["tool_choice"] = self.tools.choice_field()
            body["parallel_tool_calls"] = self.tools.parallel
        if self.logprobs:
            body["logprobs"] = True
            if self.top_logprobs is not None:
                body["top_logprobs"] = self.top_logprobs
        return body


def parse_json_object(raw: bytes, *, repair_text: bool = False) -> dict[str, Any]:
    """Decode a request body that must be one JSON object, made of Unicode text.

    A lone surrogate (``"\\ud800"``: valid JSON, not Unicode, shared/text.py) is refused with
    the field named; with ``repair_text`` it becomes U+FFFD, as do bytes that are not UTF-8:
    a webhook acknowledges and answers the rest, since any refusal makes the platform deliver
    it again and again.
    """
    if not raw:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        value = _loads(raw, repair_text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc.__class__.__name__})") from None
    except ValueError:  # an integer over Python's limit on digits (sys.get_int_max_str_digits)
        raise BadRequest("the request body holds a number with too many digits") from None
    except RecursionError:
        raise BadRequest("the request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    if may_hold_surrogates(raw):
        if repair_text:
            return repair_surrogates(value)
        found = find_surrogate(value)
        if found is not None:
            field, path = found
            raise BadRequest(f"{path} holds a lone surrogate (\\ud800-\\udfff), which is not "
                             "Unicode text: send valid UTF-8", field)
    return value


def _loads(raw: bytes, repair_text: bool) -> Any:
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        if not repair_text:
            raise
        # Bytes that are not UTF-8 in a signed delivery: U+FFFD for them, the rest answered.
        return json.loads(raw.decode("utf-8", "replace"))


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # The array form: only text parts are supported by the models we serve.
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(f"{where}: only text content parts are supported", "messages")
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{where}: a text part needs a string 'text'", "messages")
            texts.append(text)
        return "\n".join(texts)
    if content is None:
        raise BadRequest(f"{where}.content is required", "messages")
    raise BadRequest(f"{where}.content must be a string or a list of text parts", "messages")


def _messages(value: Any, *, prefill: bool = False) -> list[Message]:
    if not isinstance(value, list):
        raise BadRequest("'messages' must be a list of messages", "messages")
    if not value:
        raise BadRequest("'messages' must not be empty", "messages")
    if len(value) > MAX_MESSAGES:
        raise BadRequest(f"'messages' holds more than {MAX_MESSAGES} messages", "messages")
    out: list[Message] = []
    calls = Conversation()
    for i, item in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object with 'role' and 'content'", "messages")
        role = item.get("role")
        if role not in _ROLES:
            raise BadRequest(f"{where}.role must be one of {', '.join(_ROLES)}", "messages")
        content = item.get("content")
        if role in ("assistant", "tool"):
            text = None if content is None else _content_text(content, where)
            out.append(calls.assistant(item, where, text) if role == "assistant"
                       else calls.result(item, where, text))
            continue
        text = _content_text(content, where)
        out.append({"role": "system" if role == "developer" else role, "content": text})
    if out[-1]["role"] == "assistant" and not prefill:
        raise BadRequest("the last message must come from the user or the system", "messages")
    return out


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    # An int is compared as it is: float() of one with hundreds of digits overflows.
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))):
        raise BadRequest(f"'{name}' must be a number", name)
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be between {low:g} and {high:g}", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be a whole number", name)
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be between {low} and {high}", name)
    return value


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("'stop' must be a non-empty string or a list of them", "stop")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise BadRequest(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences", "stop")
    return list(stops)


def parse_chat_request(body: dict[str, Any], *, max_tokens_cap: int,
                       prefill: bool = False) -> ChatRequest:
    """Validate a chat completion request body; raise :class:`BadRequest` saying what is wrong.
    ``prefill``: the last message may be the assistant's, the start of the answer for the
    engine to go on from (the functions prime grounded answers so; functions/pipeline.py)."""
    _check_unsupported(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    stream = body.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    if options is not None and not stream:
        raise BadRequest("'stream_options' is only allowed when 'stream' is true",
                         "stream_options")
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise BadRequest("only 'n': 1 is supported (one choice per request)", "n")
    max_tokens = _integer(body, "max_completion_tokens", 1, max_tokens_cap)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, max_tokens_cap)
    seed = _integer(body, "seed", -(2**63), 2**63 - 1)
    collections = body.get("collections")
    if collections is not None and not isinstance(collections, list):
        raise BadRequest("'collections' must be a list of collection names", "collections")
    for name in collections or ():
        collection_name(name, "collections")  # a 400 with the rule, not a 403 or a 500
    response_format = parse_response_format(body.get("response_format"))
    tools = parse_tools(body)
    if tools is not None and response_format is not None:
        raise BadRequest("'response_format' and 'tools' cannot be asked together",
                         "response_format")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise BadRequest("'logprobs' must be true or false", "logprobs")
    top_logprobs = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top_logprobs is not None and not logprobs:
        raise BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    return ChatRequest(
        messages=_messages(body.get("messages"), prefill=prefill),
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
        response_format=response_format,
        tools=tools,
        logprobs=bool(logprobs),
        top_logprobs=top_logprobs,
    )


def error_body(message: str, kind: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, so OpenAI clients raise their usual exceptions; ``param`` names
    the request field at fault."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_event(message: str, code: str) -> bytes:
    """The server-sent event that ends a stream which failed after its 200 was sent: OpenAI's
    error shape (a ``server_error`` with a ``code`` saying why), and no ``[DONE]`` after it.
    The gateway and the API end every broken stream with it, so clients read one shape."""
    return b"data: " + json.dumps(error_body(message, "server_error", code)).encode() + b"\n\n"
