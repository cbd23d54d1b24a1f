"""A streamed tool answer read as the engine writes it (model_server/tools_stream.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from model_server.tools_stream import Writer, as_written
from shared.tools_schema import Tools, parse_tools

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time"}}


def tools(choice: Any = "auto") -> Tools:
    found = parse_tools({"tools": [WEATHER, TIME], "tool_choice": choice,
                         "parallel_tool_calls": True})
    assert found is not None
    return found


def read(text: str, given: Tools, piece: int) -> tuple[list[dict[str, Any]], Writer]:
    """``text`` fed ``piece`` characters at a time: every delta, and the writer."""
    writer = Writer(given)
    deltas = [d for i in range(0, len(text), piece) for d in writer.feed(text[i:i + piece])]
    return deltas, writer


def calls_of(deltas: list[dict[str, Any]]) -> list[tuple[str, str]]:
    made: dict[int, list[str]] = {}
    for delta in deltas:
        for call in delta.get("tool_calls") or ():
            entry = made.setdefault(call["index"], ["", ""])
            entry[0] += call["function"].get("name") or ""
            entry[1] += call["function"].get("arguments") or ""
    return [(name, arguments) for name, arguments in made.values()]


ARGS = '{"city": "San Cristóbal {de} \\"La\\" Laguna", "days": [1, {"n": 2}]}'


@pytest.mark.parametrize("piece", [1, 2, 7, 1000])
def test_calls_and_answers_come_out_as_they_are_written(piece: int) -> None:
    one, writer = read(f'{{"name": "get_weather", "arguments": {ARGS}}}', tools(), piece)
    assert calls_of(one) == [("get_weather", ARGS)] and not writer.whole
    assert one[0]["role"] == "assistant" and one[0]["content"] is None
    assert one[0]["tool_calls"][0]["id"].startswith("call_")
    several, _ = read('{"calls": [{"name": "get_weather", "arguments": {"city": "Lima"}}, '
                      '{"name": "get_time", "arguments": {}}]}', tools("required"), piece)
    assert calls_of(several) == [("get_weather", '{"city": "Lima"}'), ("get_time", "{}")]
    named, _ = read(ARGS, tools({"type": "function", "function": {"name": "get_weather"}}),
                    piece)
    assert calls_of(named) == [("get_weather", ARGS)]
    text = 'It is \\"sunny\\"\\nin Quito \\u00e9 \\ud83d\\ude00 \\\\ ok'
    answered, writer = read(f'{{"answer": "{text}"}}', tools(), piece)
    assert "".join(d.get("content") or "" for d in answered) == json.loads(f'"{text}"')
    assert writer.calls == 0 and writer.answered


def test_the_arguments_grow_with_the_engine_s_text() -> None:
    writer = Writer(tools())
    assert calls_of(writer.feed('{"name": "get_weather", "arguments": {"ci')) == [
        ("get_weather", '{"ci')]
    assert calls_of(writer.feed('ty": "Lima"')) == [("", 'ty": "Lima"')]


def test_keys_in_another_order_are_read_whole() -> None:
    deltas, writer = read('{"arguments": {"city": "Lima"}, "name": "get_weather"}', tools(), 3)
    assert deltas == [] and writer.whole
    # A name not followed by its arguments: nothing went out yet, so it is read whole too.
    odd = '{"name": "get_weather", "city": "' + "L" * 80 + '"}'
    deltas, writer = read(odd, tools(), 5)
    assert deltas == [] and writer.whole


async def test_the_engine_s_stream_becomes_openai_s() -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Lima"}}'

    async def engine() -> AsyncIterator[bytes]:
        head = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        for i in range(0, len(text), 5):
            yield b"data: " + json.dumps({**head, "choices": [
                {"index": 0, "delta": {"content": text[i:i + 5]}, "finish_reason": None}]}
            ).encode() + b"\n\n"
        yield b"data: " + json.dumps({**head, "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode() + b"\n\n"
        yield b"data: " + json.dumps({**head, "choices": [], "usage": {
            "prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    assert [e async for e in as_written(_lines(b"data: not json\n\n"), tools())] == [
        b"data: not json\n\n"]  # passed on as it came, not a failure of the relay
    for shape in ('{"name": "get_weather", "arguments": {"city": "Lima"}}',
                  '{"arguments": {"city": "Lima"}, "name": "get_weather"}'):
        text = shape
        out = b"".join([e async for e in as_written(engine(), tools())])
        events = [e[6:] for e in out.split(b"\n\n") if e.startswith(b"data: ")]
        assert events[-1] == b"[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[-1]["usage"]["total_tokens"] == 21
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        assert [(n, json.loads(a)) for n, a in calls_of(deltas)] == [
            ("get_weather", {"city": "Lima"})]
        finished = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finished[-1] == "tool_calls"


async def _lines(*events: bytes) -> AsyncIterator[bytes]:
    for event in events:
        yield event
