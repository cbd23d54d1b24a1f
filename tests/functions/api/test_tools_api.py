"""Tools through the API with OpenAI's own client (functions → gateway → llama-server with the
bundled model, whose template knows no tools: the gateway builds each call from JSON the engine
is held to, model_server/tools.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest

from tests.conftest import Api
from tests.functions.api.test_api import openai_client, wait_for_rows

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                   "properties": {"city": {"type": "string", "maxLength": 40}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The time in a time zone.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["zone"],
                   "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "EST"]}}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def one_call(message: Any) -> tuple[str, dict[str, Any]]:
    [call] = message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    return call.function.name, json.loads(call.function.arguments)


async def test_a_named_function_is_called_with_arguments_that_fit(api: Api) -> None:
    sub = f"caller-{uuid.uuid4().hex[:6]}"
    async with openai_client(api, sub=sub) as client:
        completion = await client.chat.completions.create(
            model="x", messages=ASK, tools=[WEATHER, TIME], max_tokens=64,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    name, arguments = one_call(choice.message)
    assert name == "get_weather" and set(arguments) == {"city"}
    assert isinstance(arguments["city"], str)
    [row] = await wait_for_rows(api, sub, 1)  # the audit log keeps the call
    assert str(row["answer"]).startswith("get_weather({")


async def test_required_calls_one_of_the_tools_and_auto_may_answer(api: Api) -> None:
    async with openai_client(api) as client:
        required = await client.chat.completions.create(
            model="x", messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
            max_tokens=64)
        auto = await client.chat.completions.create(
            model="x", messages=ASK, tools=[WEATHER, TIME], max_tokens=64)
        none = await client.chat.completions.create(
            model="x", messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=8)
    name, arguments = one_call(required.choices[0].message)
    assert (name, sorted(arguments)) in [("get_weather", ["city"]), ("get_time", ["zone"])]
    if required.choices[0].message.tool_calls[0].function.name == "get_time":
        assert arguments["zone"] in ("UTC", "CET", "EST")
    choice = auto.choices[0]
    if choice.finish_reason == "tool_calls":
        one_call(choice.message)
    else:  # it chose to answer in words (cut at max_tokens, maybe): its text, not JSON
        assert choice.finish_reason in ("stop", "length") and choice.message.tool_calls is None
        assert not (choice.message.content or "").lstrip().startswith('{"answer"')
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content


async def test_a_streamed_call_arrives_as_openai_streams_it(api: Api) -> None:
    async with openai_client(api) as client:
        stream = await client.chat.completions.create(
            model="x", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=64,
            stream=True, stream_options={"include_usage": True})
        ident, name, arguments, finish, usage = None, "", "", None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    ident = call.id or ident
                    name += (call.function.name or "") if call.function else ""
                    arguments += (call.function.arguments or "") if call.function else ""
                finish = choice.finish_reason or finish
    assert ident and name == "get_weather" and finish == "tool_calls"
    assert set(json.loads(arguments)) == {"city"}
    assert usage is not None and usage.completion_tokens > 0


async def test_the_result_of_a_call_continues_the_conversation(api: Api) -> None:
    async with openai_client(api) as client:
        first = await client.chat.completions.create(
            model="x", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=64)
        call = first.choices[0].message.tool_calls[0]
        messages: list[Any] = [*ASK, first.choices[0].message.model_dump(exclude_none=True),
                               {"role": "tool", "tool_call_id": call.id,
                                "content": "Sunny, 21 °C."}]
        second = await client.chat.completions.create(model="x", messages=messages,
                                                      tools=[WEATHER], tool_choice="none",
                                                      max_tokens=16)
    assert second.choices[0].message.content


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "float"}}}}}]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
     "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),  # no tools
    ({"messages": [*ASK, {"role": "tool", "tool_call_id": "call_nowhere", "content": "x"}]},
     "messages"),
    ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "response_format"),
])
async def test_tools_asked_wrongly_are_a_400_naming_the_field(
    api: Api, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "x", "messages": ASK, "max_tokens": 2, **extra}
    async with openai_client(api) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.post("/chat/completions", cast_to=object, body=body)
    assert err.value.param == param


# The default policy withholds a Slack token in an answer (shared/moderation_policy.toml): a
# tool whose only argument can be one makes the model pass it, whole and streamed.
LEAKY = {"type": "function", "function": {
    "name": "post_message", "description": "Post to Slack.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["token"],
                   "properties": {"token": {"type": "string",
                                            "enum": ["xoxb-1234567890-abcdefghij"]}}}}}


async def test_the_arguments_of_a_call_are_moderated_whole_and_streamed(api: Api) -> None:
    async with openai_client(api) as client:
        whole = await client.chat.completions.create(
            model="x", messages=ASK, tools=[LEAKY], tool_choice="required", max_tokens=64)
        stream = await client.chat.completions.create(
            model="x", messages=ASK, tools=[LEAKY], tool_choice="required", max_tokens=64,
            stream=True)
        arguments, finish = "", None
        async for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    arguments += (call.function.arguments or "") if call.function else ""
                finish = choice.finish_reason or finish
    assert whole.choices[0].finish_reason == "content_filter"
    assert not whole.choices[0].message.tool_calls
    assert finish == "content_filter" and "xoxb-1234567890-abcdefghij" not in arguments
