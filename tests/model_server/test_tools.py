"""Tool calls built from the engine's JSON (model_server/tools.py), on their own."""

from __future__ import annotations

import json
from typing import Any

from model_server.tools import answer_schema, as_events, engine_request, with_tool_calls
from shared.tools_schema import parse_tools

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time"}}


def tools(choice: Any = "auto", parallel: bool | None = None) -> Any:
    body = {"tools": [WEATHER, TIME], "tool_choice": choice}
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    found = parse_tools(body)
    assert found is not None
    return found


def result(content: str, finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "created": 1, "model": "m", "usage": {"prompt_tokens": 9,
            "completion_tokens": 5, "total_tokens": 14},
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}]}


def test_the_schema_follows_the_choice() -> None:
    named = tools({"type": "function", "function": {"name": "get_weather"}})
    assert answer_schema(named) == WEATHER["function"]["parameters"]
    required = answer_schema(tools("required"))
    assert [s["properties"]["name"] for s in required["anyOf"]] == [
        {"const": "get_weather"}, {"const": "get_time"}]
    auto = answer_schema(tools("auto"))
    assert auto["anyOf"][0]["required"] == ["answer"] and len(auto["anyOf"]) == 3
    # Several calls at once only when parallel_tool_calls is true (one by default, and false).
    assert answer_schema(tools("auto", parallel=False)) == auto
    several = answer_schema(tools("auto", parallel=True))["anyOf"]
    assert len(several) == 4 and several[-1]["properties"]["calls"] == {
        "type": "array", "items": {"anyOf": required["anyOf"]}, "minItems": 2, "maxItems": 8}
    assert "calls" in answer_schema(tools("required", True))["anyOf"][-1]["properties"]


def test_the_engine_is_told_the_tools_and_held_to_the_schema() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Weather in Lima?"}],
            "stream": True, "stream_options": {"include_usage": True}, "tools": [WEATHER],
            "tool_choice": "required", "parallel_tool_calls": True, "max_tokens": 9}
    sent = engine_request(body, tools("required"))
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(sent)
    # Streamed as asked: the calls are read as the engine writes them (tools_stream.py).
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == 9
    assert sent["messages"][0]["content"].startswith("Be brief.\n\nYou can call")
    assert "get_weather" in sent["messages"][0]["content"]
    assert sent["response_format"]["json_schema"]["schema"] == answer_schema(tools("required"))


def test_json_becomes_a_call_or_an_answer_and_half_a_json_stays_as_written() -> None:
    called = with_tool_calls(result('{"name": "get_weather", "arguments": {"city": "Lima"}}'),
                             tools("required"))["choices"][0]
    [call] = called["message"]["tool_calls"]
    assert called["finish_reason"] == "tool_calls" and called["message"]["content"] is None
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Lima"}'}
    named = with_tool_calls(result('{"city": "Quito"}'), tools(
        {"type": "function", "function": {"name": "get_weather"}}))["choices"][0]
    assert named["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Quito"}'
    answered = with_tool_calls(result('{"answer": "Hello"}'), tools())["choices"][0]
    assert answered["message"] == {"role": "assistant", "content": "Hello"}
    assert answered["finish_reason"] == "stop"
    talking = with_tool_calls(result('{"answer": "It is sunny in Li', "length"), tools())
    assert talking["choices"][0]["message"]["content"] == "It is sunny in Li"
    # The token limit reached with the closing brace: a whole plain answer, still its text.
    closed = with_tool_calls(result('{"answer": "It is sunny."}', "length"), tools())
    assert closed["choices"][0]["message"]["content"] == "It is sunny."
    cut = with_tool_calls(result('{"name": "get_wea', "length"), tools("required"))
    assert cut["choices"][0]["message"]["content"] == '{"name": "get_wea'
    assert cut["choices"][0]["finish_reason"] == "length"


async def test_a_call_streams_as_openai_streams_one() -> None:
    whole = with_tool_calls(result('{"name": "get_weather", "arguments": {"city": '
                                   '"San Cristóbal de La Laguna"}}'), tools("required"))
    events = [e async for e in as_events(whole, include_usage=True)]
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 14
    deltas = [c["choices"][0] for c in chunks[:-1]]
    calls = [d["delta"]["tool_calls"][0] for d in deltas if "tool_calls" in d["delta"]]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather"
    assert len(calls) > 2  # the arguments come in pieces
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"city": "San Cristóbal de La Laguna"}
    assert deltas[-1]["finish_reason"] == "tool_calls"


async def test_several_calls_in_one_answer_each_with_its_id_and_index() -> None:
    told = engine_request({"messages": [{"role": "user", "content": "Lima and Quito?"}]},
                          tools("required", True))["messages"][0]["content"]
    assert 'To call several at once, answer {"calls": [<call>, <call>]}.' in told
    assert "several" not in engine_request({"messages": []}, tools(
        "required"))["messages"][0]["content"]
    whole = with_tool_calls(result(json.dumps({"calls": [
        {"name": "get_weather", "arguments": {"city": "Lima"}},
        {"name": "get_weather", "arguments": {"city": "Quito"}}]})), tools("required", True))
    choice = whole["choices"][0]
    made = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls" and len({c["id"] for c in made}) == 2
    assert [c["function"]["arguments"] for c in made] == ['{"city":"Lima"}', '{"city":"Quito"}']
    events = [e async for e in as_events(whole, include_usage=False)]
    deltas = [json.loads(e[6:])["choices"][0]["delta"] for e in events[:-1]]
    pieces: dict[int, str] = {}
    for call in (c for d in deltas for c in d.get("tool_calls") or ()):
        pieces[call["index"]] = pieces.get(call["index"], "") + call["function"]["arguments"]
    assert pieces == {0: '{"city":"Lima"}', 1: '{"city":"Quito"}'}


def test_a_function_named_like_a_choice_is_still_that_function() -> None:
    odd = {"type": "function", "function": {"name": "required", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}
    found = parse_tools({"tools": [WEATHER, odd],
                         "tool_choice": {"type": "function", "function": {"name": "required"}}})
    assert found is not None and found.choice_field() == {
        "type": "function", "function": {"name": "required"}}
    assert answer_schema(found) == odd["function"]["parameters"]
    called = with_tool_calls(result('{"n": 3}'), found)["choices"][0]
    assert called["message"]["tool_calls"][0]["function"] == {"name": "required",
                                                              "arguments": '{"n":3}'}
    plain = parse_tools({"tools": [WEATHER, odd], "tool_choice": "required"})
    assert plain is not None and plain.function is None and "anyOf" in answer_schema(plain)
