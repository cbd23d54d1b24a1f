"""Lone surrogates: valid JSON, not Unicode. Refused with the field named, or repaired.

The HTTP cases (a 400 on a kept-alive connection, a webhook answered) are in
tests/functions/test_hostile_input.py; here the parsing itself.
"""

from __future__ import annotations

import json

import pytest

from shared.chat import estimate_tokens
from shared.errors import BadRequest
from shared.openai_schema import parse_chat_request, parse_json_object
from shared.text import find_surrogate, may_hold_surrogates, repair_surrogates

LONE = b'{"messages":[{"role":"user","content":"\\ud800 hi"}]}'


def test_the_issues_body_is_a_400_naming_the_field() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_json_object(LONE)
    assert caught.value.param == "messages"
    assert str(caught.value).startswith("messages[0].content holds a lone surrogate")


@pytest.mark.parametrize("raw, field, path", [
    # the escape, in either case, high or low half
    (b'{"model":"\\uDBFF"}', "model", "model"),
    (b'{"input":["fine","x\\udc00"]}', "input", "input[1]"),
    # the raw bytes that json decodes with surrogatepass
    (b'{"messages":[{"role":"user","content":"hi \xed\xa0\x80"}]}', "messages",
     "messages[0].content"),
    # in a key, nested: the key itself is named, escaped so the error can be sent
    (b'{"metadata":{"a\\ud800b":1}}', "metadata", "metadata.a\\ud800b"),
    (b'{"\\ud800":1}', "\\ud800", "\\ud800"),
    # a pair whose halves are apart is two lone ones
    (b'{"stop":"\\ud83d \\ude00"}', "stop", "stop"),
])
def test_every_place_a_lone_surrogate_can_hide_is_found(raw: bytes, field: str,
                                                         path: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_json_object(raw)
    assert caught.value.param == field
    assert str(caught.value).startswith(f"{path} holds")
    str(caught.value).encode()  # the message itself encodes: it goes back to the client


def test_a_utf16_body_is_checked_too() -> None:
    raw = '{"input":"\ud800"}'.encode("utf-16-le", "surrogatepass")
    assert may_hold_surrogates(raw)
    with pytest.raises(BadRequest):
        parse_json_object(raw)


def test_a_pair_is_a_character_and_passes() -> None:
    body = parse_json_object(b'{"messages":[{"role":"user","content":"\\ud83d\\ude00 hi"}]}')
    assert body["messages"][0]["content"] == "\U0001f600 hi"


def test_a_body_without_escapes_is_not_walked() -> None:
    assert not may_hold_surrogates('{"content":"caf\u00e9 \U0001f600 \\n"}'.encode())
    assert may_hold_surrogates(b'{"content":"\\uD83D\\uDE00"}')  # walked, and passes
    assert find_surrogate(json.loads(b'{"content":"\\uD83D\\uDE00"}')) is None


def test_a_webhook_body_is_repaired_in_every_string_and_key() -> None:
    raw = b'{"event":{"text":"\\ud800 hi","blocks":["\\udfff",{"k\\ud800":"v"}]},"n":1}'
    body = parse_json_object(raw, repair_text=True)
    assert body == {"event": {"text": "\ufffd hi", "blocks": ["\ufffd", {"k\ufffd": "v"}]},
                    "n": 1}
    json.dumps(body, ensure_ascii=False).encode()  # Unicode again: it can be stored and sent
    assert repair_surrogates("\udc00!") == "\ufffd!"


def test_a_webhook_body_with_bytes_that_are_not_utf8_is_read_too() -> None:
    # Latin-1 where UTF-8 belongs: the API says so, a signed delivery is answered anyway.
    with pytest.raises(BadRequest) as caught:
        parse_json_object(b'{"text":"caf\xe9 \\ud800"}')
    assert str(caught.value) == "the request body is not valid JSON (UnicodeDecodeError)"
    assert parse_json_object(b'{"text":"caf\xe9 \\ud800"}', repair_text=True) == {
        "text": "caf\ufffd \ufffd"}


def test_a_body_nested_as_deep_as_the_parser_allows_is_walked_without_overflow() -> None:
    deep = b'{"a":' + b"[" * 900 + b'"\\ud800"' + b"]" * 900 + b"}"
    with pytest.raises(BadRequest) as caught:
        parse_json_object(deep)
    assert caught.value.param == "a"
    inner = parse_json_object(deep, repair_text=True)["a"]
    for _ in range(899):
        inner = inner[0]
    assert inner == ["\ufffd"]


def test_a_lone_surrogate_that_got_in_is_a_valid_chat_request_after_repair() -> None:
    body = parse_json_object(LONE, repair_text=True)
    chat = parse_chat_request(body, max_tokens_cap=64)
    assert chat.messages[0]["content"] == "\ufffd hi"


def test_the_token_estimate_never_raises() -> None:
    # The 500 of the issue came from here; the edges now stop such text, and this stays safe.
    assert estimate_tokens("\ud800 hi") == estimate_tokens("abc hi")
