"""A framework nobody here wrote, as programs use it to talk to OpenAI-compatible servers:
LangChain's ``ChatOpenAI`` (structured output, tools, streaming), unmodified but for its base URL
and key (a client JWT), through the API (functions → gateway → llama-server with the bundled
model)."""

from __future__ import annotations

import json
import operator
import time
import uuid
from collections.abc import Callable
from functools import reduce
from typing import Any, Literal

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, SecretStr

from tests.conftest import Api
from tests.functions.api.test_api import audit_rows

ASK_PERSON = "Ana is 30 years old and lives in Quito. She is calm. Describe her."
ASK_WEATHER = "What is the weather in Paris?"


@pytest.fixture(autouse=True)
def _no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing but the API is reached: LangSmith's tracing and gateway stay off."""
    for name in ("LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING", "LANGCHAIN_TRACING"):
        monkeypatch.setenv(name, "false")
    for name in ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGSMITH_GATEWAY",
                 "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def chat(api: Api, sub: str | None = None, max_tokens: int = 64, **extra: Any) -> ChatOpenAI:
    """ChatOpenAI as its documentation has it, pointed at Charla with a client's JWT."""
    return ChatOpenAI(base_url=api.url + "/v1", api_key=SecretStr(api.token(sub)),
                      model=api.settings.model_name, temperature=0,
                      max_completion_tokens=max_tokens, max_retries=0, timeout=120, **extra)


def rows_of(api: Api, sub: str, count: int) -> list[dict[str, object]]:
    """The audit rows of ``sub``, once there are ``count`` (the log is written after the
    answer)."""
    deadline = time.monotonic() + 10
    while len(rows := audit_rows(api, sub)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


# Bounded, so that every answer the grammar allows fits in max_tokens (the docstring is the
# description LangChain gives the model).
class Person(BaseModel):
    """A person the question describes."""

    name: str = Field(max_length=32)
    age: int = Field(ge=0, le=150)
    city: str = Field(max_length=32)
    mood: Literal["calm", "busy", "happy"]


class WeatherArgs(BaseModel):
    city: str = Field(min_length=1, max_length=40, description="The city's name.")


@tool(args_schema=WeatherArgs)
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f"Sunny, 21 °C in {city}."


def fits_person(person: object) -> Person:
    assert isinstance(person, Person)
    assert 0 < len(person.name) <= 32 and 0 < len(person.city) <= 32
    assert 0 <= person.age <= 150 and person.mood in ("calm", "busy", "happy")
    return person


def test_structured_output_as_a_json_schema_gives_the_pydantic_model(api: Api) -> None:
    sub = f"lc-schema-{uuid.uuid4().hex[:6]}"
    structured = chat(api, sub, max_tokens=128).with_structured_output(Person,
                                                                       method="json_schema")
    person = fits_person(structured.invoke(ASK_PERSON))
    [row] = rows_of(api, sub, 1)  # it went through Charla, as this client, and was held to JSON
    assert row["status"] == 200 and Person.model_validate_json(str(row["answer"])) == person


def test_structured_output_by_function_calling_gives_the_pydantic_model(api: Api) -> None:
    """LangChain's other way: the schema offered as a tool, named in ``tool_choice``
    (``parallel_tool_calls: false``), and the call's arguments parsed into the model."""
    sub = f"lc-function-{uuid.uuid4().hex[:6]}"
    structured = chat(api, sub, max_tokens=128).with_structured_output(
        Person, method="function_calling", include_raw=True)
    result: Any = structured.invoke(ASK_PERSON)
    assert result["parsing_error"] is None
    fits_person(result["parsed"])
    raw = result["raw"]
    assert isinstance(raw, AIMessage) and raw.response_metadata["finish_reason"] == "tool_calls"
    [call] = raw.tool_calls
    assert call["name"] == "Person" and Person.model_validate(call["args"]) == result["parsed"]
    [row] = rows_of(api, sub, 1)
    assert str(row["answer"]).startswith("Person({")


def the_call(message: AIMessage) -> tuple[str, WeatherArgs]:
    assert not message.invalid_tool_calls
    [call] = message.tool_calls
    assert call["id"] and call["id"].startswith("call_") and call["type"] == "tool_call"
    return call["name"], WeatherArgs.model_validate(call["args"])


def test_a_bound_tool_is_called_and_its_result_continues_the_conversation(api: Api) -> None:
    llm = chat(api)
    asked = [HumanMessage(ASK_WEATHER)]
    called = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(asked)
    assert isinstance(called, AIMessage)
    assert called.response_metadata["finish_reason"] == "tool_calls" and not called.content
    name, arguments = the_call(called)
    assert name == "get_weather" and set(arguments.model_dump()) == {"city"}
    result = get_weather.invoke(called.tool_calls[0])  # the tool run as LangChain runs one
    assert isinstance(result, ToolMessage) and result.tool_call_id == called.tool_calls[0]["id"]
    answer = llm.bind_tools([get_weather], tool_choice="none").invoke([*asked, called, result])
    assert isinstance(answer, AIMessage) and not answer.tool_calls
    assert isinstance(answer.content, str) and answer.content.strip()
    assert answer.response_metadata["finish_reason"] in ("stop", "length")


def test_a_streamed_tool_call_sums_to_the_call(api: Api) -> None:
    llm = chat(api, stream_usage=True).bind_tools([get_weather], tool_choice="get_weather")
    chunks = []
    for chunk in llm.stream([HumanMessage(ASK_WEATHER)]):
        assert isinstance(chunk, AIMessageChunk)
        chunks.append(chunk)
    assert len(chunks) > 2
    whole = reduce(operator.add, chunks)
    assert isinstance(whole, AIMessageChunk)
    name, _arguments = the_call(whole)
    assert name == "get_weather"
    assert whole.response_metadata["finish_reason"] == "tool_calls"
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] > 0
    pieces = "".join(str(piece.get("args") or "") for c in chunks
                     for piece in c.tool_call_chunks)
    assert json.loads(pieces) == whole.tool_calls[0]["args"]  # the streamed pieces add up


def unknown_result(llm: ChatOpenAI) -> Any:
    """A tool message answering a call nobody made: LangChain sends it as it is."""
    return llm.invoke([HumanMessage(ASK_WEATHER),
                       ToolMessage("Sunny.", tool_call_id="call_nowhere")])


def misspelt_choice(llm: ChatOpenAI) -> Any:
    """A tool_choice naming no bound tool: LangChain passes the string on as the choice."""
    return llm.bind_tools([get_weather], tool_choice="get_wether").invoke(ASK_WEATHER)


def float_typed_tool(llm: ChatOpenAI) -> Any:
    """A tool given as OpenAI's dict, whose schema is not JSON Schema ("float")."""
    bad = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "float"}}}}}
    return llm.bind_tools([bad]).invoke(ASK_WEATHER)


@pytest.mark.parametrize(("send", "param", "named"), [
    (unknown_result, "messages", "messages[1].tool_call_id"),
    (misspelt_choice, "tool_choice", "'tool_choice' is 'get_wether'"),
    (float_typed_tool, "tools", "tools[0].function.parameters.properties.x.type"),
])
def test_what_langchain_lets_through_is_a_400_naming_the_field(
    api: Api, send: Callable[[ChatOpenAI], Any], param: str, named: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        send(chat(api, max_tokens=2))
    assert err.value.status_code == 400 and err.value.param == param
    assert named in err.value.message
