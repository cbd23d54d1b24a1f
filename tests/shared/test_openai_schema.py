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
                      {"role": "user", "content": [{"type": "text", "text": "ho"},
                                                   {"type": "text", "text": "la"}]}]},
        max_tokens_cap=10,
    )
    assert req.messages == [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": "hola"}]


def test_unknown_fields_are_not_forwarded() -> None:
    req = parse_chat_request(ok(tools=[{"x": 1}], logit_bias={"1": 2}), max_tokens_cap=10)
    assert "tools" not in req.engine_body("m", 5)


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
