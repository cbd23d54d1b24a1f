"""Structured answers and tool calls grounded in the collections a program names (issue 24).

Real functions app, model server and Postgres, with the rewriting proxy of
tests/functions/rewriting.py between them, so that each case is decided by the
check, not by the model's mood: a JSON answer's values must be what the passages state, or
the answer is refused whole (OpenAI's ``refusal``: a quote cannot stand in a schema's place);
a tool call is not checked for facts; words in place of a call are checked as any answer.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.functions.rewriting import QUESTION, RIGHT, SENTENCE, WRONG, Stack

MADRID = "How many vacation days do Madrid employees get?"
DAYS = {"type": "json_schema", "json_schema": {"name": "days", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["office", "days"],
    "properties": {"office": {"type": "string", "maxLength": 24},
                   "days": {"type": "integer", "minimum": 0, "maximum": 99}}}}}
LOOKUP = [{"type": "function", "function": {
    "name": "hr_lookup", "description": "Ask the HR system about an office.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["office"],
                   "properties": {"office": {"type": "string", "maxLength": 24}}}}}]


class Days(BaseModel):
    office: str
    days: int


async def chat(stack: Stack, http: httpx.AsyncClient, question: str = QUESTION, *,
               stream: bool = False, status: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": 48,
            "stream": stream, **extra}
    response = await http.post(stack.bots.url + "/v1/chat/completions", json=body,
                               headers=stack.headers)
    assert response.status_code == status, response.text
    if not stream:
        got: dict[str, Any] = response.json()
        return got
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    return {"chunks": chunks}


def asked(stack: Stack) -> str:
    """What the model was asked last: its last user message."""
    return str([m for m in stack.rewriter.sent["messages"] if m["role"] == "user"][-1]["content"])


async def test_a_json_answer_stating_what_the_passages_state_is_kept_as_written(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer, stack.rewriter.call = '{"office": "Lisbon", "days": 27}', None
    whole = await chat(stack, http, response_format=DAYS, collections=[stack.collection])
    message = whole["choices"][0]["message"]
    assert message["content"] == '{"office": "Lisbon", "days": 27}' and "fact_check" not in whole
    assert whole["citations"][0]["source"] == "vacations.md"
    # Asked with the passages and to take its values from them, with no words of ours
    # starting the JSON and no stop at a blank line (JSON may hold one).
    sent = stack.rewriter.sent
    assert SENTENCE in asked(stack) and "Take every value from the passages only" in asked(stack)
    assert sent["messages"][-1]["role"] == "user" and "stop" not in sent
    assert sent["temperature"] == 0
    # OpenAI's client parses it into the program's own model.
    client = openai.AsyncOpenAI(base_url=stack.bots.url + "/v1",
                                api_key=stack.headers["Authorization"].removeprefix("Bearer "))
    async with client:
        parsed = await client.chat.completions.parse(
            model="x", messages=[{"role": "user", "content": QUESTION}], response_format=Days,
            max_tokens=48, extra_body={"collections": [stack.collection]})
    assert parsed.choices[0].message.parsed == Days(office="Lisbon", days=27)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_json_answer_stating_a_figure_no_passage_states_is_refused_whole(
    stack: Stack, http: httpx.AsyncClient, stream: bool
) -> None:
    stack.rewriter.answer, stack.rewriter.call = '{"office": "Lisbon", "days": 24}', None
    got = await chat(stack, http, response_format=DAYS, collections=[stack.collection],
                     stream=stream)
    if not stream:
        choice, checked, cited = got["choices"][0], got["fact_check"], got["citations"]
        message = choice["message"]
        assert message["content"] is None
        refusal = message["refusal"]
    else:
        chunks = got["chunks"]
        # Nothing of the JSON was sent: it is checked whole, then refused.
        assert not any((c["choices"][0]["delta"].get("content") or "")
                       for c in chunks if c["choices"])
        [last] = [c for c in chunks if "fact_check" in c]
        choice, checked, cited = last["choices"][0], last["fact_check"], last["citations"]
        refusal = choice["delta"]["refusal"]
    assert choice["finish_reason"] == "stop"
    assert checked == {"replaced": True, "unsupported": ["24"]}
    assert refusal.startswith("According to vacations.md") and SENTENCE in refusal
    assert cited[0]["source"] == "vacations.md"


async def test_a_json_question_the_passages_do_not_answer_is_refused_without_the_model(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer, stack.rewriter.call = '{"office": "Madrid", "days": 27}', None
    before = stack.rewriter.chats
    whole = await chat(stack, http, MADRID, response_format=DAYS,
                       collections=[stack.collection])
    message = whole["choices"][0]["message"]
    assert message["content"] is None and message["refusal"].startswith("I don't know")
    assert stack.rewriter.chats == before


async def test_a_structured_answer_is_grounded_only_when_its_collections_are_named(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """The client may read the collection, but a program extracting from its own text is
    answered from that text: no passages, no check against them."""
    stack.rewriter.answer, stack.rewriter.call = '{"office": "Lisbon", "days": 24}', None
    whole = await chat(stack, http, response_format=DAYS)
    assert whole["choices"][0]["message"]["content"] == '{"office": "Lisbon", "days": 24}'
    assert "citations" not in whole and SENTENCE not in asked(stack)
    # Naming a collection the client may not read is refused, structured or not.
    refused = await chat(stack, http, response_format=DAYS, collections=["not-granted"],
                         status=403)
    assert refused["error"]["code"] == "collection_not_granted"


async def test_a_tool_call_is_not_checked_for_facts_and_words_in_its_place_are(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    grounded: dict[str, Any] = {"tools": LOOKUP, "collections": [stack.collection]}
    # A call goes out as the model made it: it asks a tool, it states nothing to a reader.
    stack.rewriter.answer, stack.rewriter.call = None, ("hr_lookup", '{"office": "Paris"}')
    whole = await chat(stack, http, tool_choice="required", **grounded)
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and "fact_check" not in whole
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"office": "Paris"}'
    assert SENTENCE in asked(stack)  # the passages were there to fill its arguments from
    chunks = (await chat(stack, http, tool_choice="required", stream=True, **grounded))["chunks"]
    assert "".join(call["function"].get("arguments") or ""
                   for c in chunks if c["choices"]
                   for call in c["choices"][0]["delta"].get("tool_calls") or ()
                   ) == '{"office": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not [c for c in chunks if "fact_check" in c]
    # Words instead of a call (tool_choice auto) are checked as any answer.
    stack.rewriter.answer, stack.rewriter.call = WRONG, None
    replaced = await chat(stack, http, **grounded)
    assert replaced["fact_check"] == {"replaced": True, "unsupported": ["2022", "24"]}
    assert replaced["choices"][0]["message"]["content"].startswith("According to vacations.md")
    stack.rewriter.answer = RIGHT
    kept = await chat(stack, http, **grounded)
    assert kept["choices"][0]["message"]["content"] == RIGHT and "fact_check" not in kept


async def test_where_the_passages_do_not_answer_the_model_may_call_its_tools(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """A Madrid question over the Lisbon policy: the model is asked without the passages
    (they would lend it Lisbon's figure), and its tools may find the answer; words that do
    not come from the documents get "I don't know" with the closest sources."""
    grounded: dict[str, Any] = {"tools": LOOKUP, "collections": [stack.collection]}
    stack.rewriter.answer, stack.rewriter.call = None, ("hr_lookup", '{"office": "Madrid"}')
    called = await chat(stack, http, MADRID, **grounded)
    assert called["choices"][0]["finish_reason"] == "tool_calls"
    assert SENTENCE not in asked(stack)
    stack.rewriter.answer, stack.rewriter.call = "Madrid employees get 27 days.", None
    words = await chat(stack, http, MADRID, **grounded)
    assert words["choices"][0]["message"]["content"] == (
        "I don't know: the documents don't say. The closest sources: "
        "vacations.md › Vacations › Lisbon.")


async def test_words_in_place_of_a_call_are_not_streamed_before_they_are_checked(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """Nothing in the collection is about the question: the words the model writes instead
    of a call are held until the answer is whole, then replaced; none of them is sent."""
    stack.rewriter.answer, stack.rewriter.call = "Ulaanbaatar is the capital.", None
    chunks = (await chat(stack, http, "What is the capital of Mongolia?", stream=True,
                         tools=LOOKUP, collections=[stack.collection]))["chunks"]
    text = "".join((c["choices"][0].get("delta") or {}).get("content") or ""
                   for c in chunks if c["choices"])
    assert "Ulaanbaatar" not in text and text.startswith("I don't know"), text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
