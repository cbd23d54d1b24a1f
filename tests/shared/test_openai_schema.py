from __future__ import annotations

from typing import Any

import pytest

from shared.errors import BadRequest
from shared.openai_schema import parse_chat_request, parse_json_object


def ok(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    body.update(over)
    return body


def test_a_full_request_is_understood() -> None:
    req = parse_chat_request(
        ok(model="m", stream=True, stream_options={"include_usage": True}, max_tokens=5,
           temperature=0.2, top_p=0.9, stop="\n", seed=7),
        max_tokens_cap=100,
    )
    assert req.stream and req.include_usage
    assert req.max_tokens == 5
    assert req.stop == ["\n"]
    body = req.engine_body("m", 5)
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2


def test_text_parts_and_developer_role_are_normalised() -> None:
    req = parse_chat_request(
        {"messages": [{"role": "developer", "content": "be brief"},
                      {"role": "user", "content": [{"type": "text", "text": "Hello"},
                                                   {"type": "text", "text": "world"}]}]},
        max_tokens_cap=10,
    )
    assert req.messages == [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": "Hello\nworld"}]


def test_harmless_fields_are_accepted_but_not_forwarded() -> None:
    harmless = {"user": "u1", "metadata": {"k": "v"}, "store": False, "service_tier": "auto",
                "parallel_tool_calls": True, "reasoning_effort": "low",
                "safety_identifier": "h", "prompt_cache_key": "k", "verbosity": "low",
                # Other engines' knobs, which clients written for them send:
                "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1}
    # Asking for nothing of what we lack is no reason to refuse.
    nothing = {"tools": [], "tool_choice": "none", "response_format": {"type": "text"},
               "logprobs": False, "logit_bias": {}, "modalities": ["text"], "audio": None,
               "top_logprobs": None, "prediction": None, "function_call": "none"}
    req = parse_chat_request(ok(**harmless, **nothing, collections=["hr"]), max_tokens_cap=10)
    assert req.collections == ["hr"]
    assert set(req.engine_body("m", 5)) == {"model", "messages", "max_tokens", "stream"}


@pytest.mark.parametrize(("field", "value"), [
    ("functions", [{"name": "f"}]),
    ("function_call", "auto"),
    ("tool_choice", "auto"),
    ("tool_choice", {"type": "function", "function": {"name": "f"}}),
    ("logit_bias", {"50256": -100}),
    ("modalities", ["text", "audio"]),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("prediction", {"type": "content", "content": "x"}),
    ("n", 2),
])
def test_what_we_cannot_give_is_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(BadRequest) as err:
        parse_chat_request(ok(**{field: value}), max_tokens_cap=10)
    assert f"'{field}'" in str(err.value)
    assert err.value.param == field


def test_null_means_unset() -> None:
    req = parse_chat_request(ok(n=None, stream=None, stream_options=None, temperature=None,
                                max_tokens=None, stop=None, seed=None, model=None),
                             max_tokens_cap=10)
    assert not req.stream and not req.include_usage and req.max_tokens is None


@pytest.mark.parametrize("stream", [False, None, "absent"])
def test_stream_options_need_a_stream(stream: Any) -> None:
    body = ok(stream_options={"include_usage": True})
    if stream != "absent":
        body["stream"] = stream
    with pytest.raises(BadRequest) as err:
        parse_chat_request(body, max_tokens_cap=10)
    assert err.value.param == "stream_options"


@pytest.mark.parametrize("raw", [
    b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1' + b"0" * 400 + b"}",
    b'{"messages": [{"role": "user", "content": "hi"}], "top_p": -1' + b"0" * 400 + b"}",
    b'{"messages": [{"role": "user", "content": "hi"}], "seed": 1' + b"0" * 400 + b"}",
    b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}',
])
def test_huge_numbers_are_a_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as err:
        parse_chat_request(parse_json_object(raw), max_tokens_cap=10)
    assert err.value.param in ("temperature", "top_p", "seed")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "'messages'"),
        ({"messages": []}, "must not be empty"),
        ({"messages": "hi"}, "list"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user"}]}, "content is required"),
        ({"messages": [{"role": "user", "content": 5}]}, "content must be"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text content"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "last message"),
        (ok(max_tokens=0), "max_tokens"),
        (ok(max_tokens=10**6), "max_tokens"),
        (ok(max_tokens="9"), "whole number"),
        (ok(temperature=3), "temperature"),
        (ok(temperature=True), "temperature"),
        (ok(stop=["a", "b", "c", "d", "e"]), "at most 4"),
        (ok(stop=[""]), "stop"),
        (ok(stream="yes"), "stream"),
        (ok(n=2), "'n'"),
        (ok(n=0), "'n'"),
        (ok(n=True), "'n'"),
        (ok(model=3), "model"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_chat_request(body, max_tokens_cap=2048)
    assert words in str(err.value)


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b"\xff\xfe", b"null"])
def test_bodies_that_are_not_one_json_object(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json_object(raw)


@pytest.mark.parametrize(("raw", "words"), [
    (b'{"seed": 1' + b"0" * 5000 + b"}", "too many digits"),  # over Python's 4300-digit limit
    (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
])
def test_bodies_json_cannot_hold_are_a_bad_request(raw: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_json_object(raw)
    assert words in str(err.value)


PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["name"], "additionalProperties": False}


def test_a_structured_answer_and_log_probabilities_reach_the_engine() -> None:
    req = parse_chat_request(ok(response_format={"type": "json_schema", "json_schema": {
        "name": "person", "schema": PERSON, "strict": True}}, logprobs=True, top_logprobs=3),
        max_tokens_cap=10)
    body = req.engine_body("m", 5)
    assert req.structured
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "person", "schema": PERSON, "strict": True}}
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    plain = parse_chat_request(ok(response_format={"type": "json_object"}), max_tokens_cap=10)
    assert plain.engine_body("m", 5)["response_format"] == {"type": "json_object"}
    assert "logprobs" not in plain.engine_body("m", 5)


def test_several_tool_calls_are_asked_for_only_when_the_request_says_so() -> None:
    tool = {"type": "function", "function": {"name": "get_weather"}}
    for given, sent in ((True, True), (False, False), (None, False)):
        extra: dict[str, Any] = {"tools": [tool]}
        if given is not None:
            extra["parallel_tool_calls"] = given
        req = parse_chat_request(ok(**extra), max_tokens_cap=10)
        assert req.engine_body("m", 5)["parallel_tool_calls"] is sent


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize(("value", "words"), [
    ("json", "must be an object"),
    ({"type": "xml"}, "response_format.type must be"),
    ({"type": "json_schema"}, "response_format.json_schema must be an object"),
    ({"type": "json_schema", "json_schema": {"schema": PERSON}}, "json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a b", "schema": PERSON}},
     "json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, "json_schema.schema is required"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}},
     "schema must be a JSON Schema object"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}},
     "schema.type must be one of"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"age": {"type": "int"}}}}},
     "schema.properties.age.type"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "required": "name"}}}, "schema.required must be a list"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"anyOf": []}}},
     "schema.anyOf must be a non-empty list"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": _nested(40)}},
     "levels deep"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": PERSON, "strict": "yes"}},
     "strict must be true or false"),
])
def test_a_response_format_that_is_not_one_is_a_400_naming_where(value: Any,
                                                                  words: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_chat_request(ok(response_format=value), max_tokens_cap=10)
    assert words in str(err.value)
    assert err.value.param == "response_format"


@pytest.mark.parametrize(("extra", "param"), [
    ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
])
def test_log_probabilities_asked_wrongly_are_a_400(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_chat_request(ok(**extra), max_tokens_cap=10)
    assert err.value.param == param
