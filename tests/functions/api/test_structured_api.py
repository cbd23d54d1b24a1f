"""Programs written for OpenAI's API, asking for structured answers and log probabilities
through the API (functions → gateway → llama-server with the bundled model), with OpenAI's own
client, unmodified but for its base URL and key."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel, Field

from tests.conftest import Api
from tests.functions.api.test_api import openai_client, wait_for_rows

ASK = [{"role": "user", "content": "Ana is 30 years old and lives in Quito. Describe her."}]


class Person(BaseModel):
    """Bounded, so that every answer the grammar allows fits in max_tokens: a small model at
    temperature 1 can write a string without end."""

    name: str = Field(max_length=32)
    age: int = Field(ge=0, le=150)
    city: str = Field(max_length=32)


async def test_parse_with_a_pydantic_model_gives_that_model(api: Api) -> None:
    async with openai_client(api, sub="parser") as client:
        for seed in (1, 2):
            completion = await client.chat.completions.parse(
                model="x", messages=ASK, response_format=Person, max_tokens=128, seed=seed,
                temperature=1.0)
            person = completion.choices[0].message.parsed
            assert isinstance(person, Person)
    rows = await wait_for_rows(api, "parser", 2)  # recorded after the response is sent
    assert len(rows) == 2 and all(json.loads(str(r["answer"])) for r in rows)


async def test_json_object_mode_and_a_streamed_schema_answer(api: Api) -> None:
    schema = Person.model_json_schema() | {"additionalProperties": False}
    async with openai_client(api) as client:
        stream = await client.chat.completions.create(
            model="x", messages=ASK, max_tokens=128, stream=True,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "person", "schema": schema}})
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream
                        if chunk.choices])
        assert Person.model_validate_json(text)
        whole = await client.chat.completions.create(
            model="x", messages=ASK, max_tokens=96, response_format={"type": "json_object"})
        if whole.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(whole.choices[0].message.content or ""), dict)


async def test_log_probabilities_through_the_api(api: Api) -> None:
    async with openai_client(api) as client:
        completion = await client.chat.completions.create(
            model="x", messages=ASK, max_tokens=3, logprobs=True, top_logprobs=2)
    tokens = completion.choices[0].logprobs
    assert tokens is not None and tokens.content
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in tokens.content)


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "p",
                                                                 "schema": {"type": "tuple"}}}},
     "response_format"),
    ({"top_logprobs": 2}, "top_logprobs"),
])
async def test_a_structured_request_asked_wrongly_is_a_400_naming_the_field(
    api: Api, extra: dict[str, object], param: str
) -> None:
    async with openai_client(api) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="x", messages=ASK, max_tokens=2,
                                                 extra_body=extra)
    assert err.value.param == param
