"""An answer drawn from the documents says what they say, through the API and the bots alike.

Real functions app, worker, model server and Postgres; between them and the model server, a
proxy on loopback that puts a chosen answer in place of the model's (tests/functions/
rewriting.py), so that each case is decided by the check and not by the model's mood. Slack is
the fake on loopback.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.functions.rewriting import QUESTION, RIGHT, SENTENCE, WRONG, Stack
from tests.functions.test_bots_slack import answered, mention


def ask(stream: bool = False, question: str = QUESTION) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}], "max_tokens": 24,
            "stream": stream}


async def api_answer(stack: Stack, http: httpx.AsyncClient,
                     question: str = QUESTION) -> dict[str, Any]:
    response = await http.post(stack.bots.url + "/v1/chat/completions",
                               json=ask(question=question), headers=stack.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def api_stream(stack: Stack, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    async with http.stream("POST", stack.bots.url + "/v1/chat/completions",
                           json=ask(stream=True), headers=stack.headers) as response:
        assert response.status_code == 200
        events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0].get("delta") or {}).get("content") or ""
                   for c in chunks if c["choices"])


async def bot_answer(stack: Stack, http: httpx.AsyncClient, question: str = QUESTION) -> str:
    body = mention(question, channel=stack.channel)
    assert (await stack.bots.slack_event(http, body)).status_code == 200
    [answer] = await answered(stack.bots, body)
    return answer


async def test_an_answer_with_a_figure_its_passage_does_not_state_is_replaced_by_a_quote(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer = WRONG
    whole = await api_answer(stack, http)
    shown = whole["choices"][0]["message"]["content"]
    assert shown.startswith("According to vacations.md") and f'"{SENTENCE}"' in shown, shown
    assert "24" not in shown and "2022" not in shown
    assert whole["fact_check"] == {"replaced": True, "unsupported": ["2022", "24"]}
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["citations"][0]["source"] == "vacations.md"

    chunks = await api_stream(stack, http)
    assert streamed_text(chunks) == shown  # the stream shows none of the model's text
    [last] = [c for c in chunks if "fact_check" in c]
    assert last is chunks[-1] and last["citations"][0]["source"] == "vacations.md"
    assert last["choices"][0]["finish_reason"] == "stop"

    # The bot decides the same, and shows the same quote above its sources.
    assert (await bot_answer(stack, http)).startswith(shown + "\n\n")


async def test_an_answer_that_says_what_its_passage_says_is_kept_word_for_word(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer = RIGHT
    whole = await api_answer(stack, http)
    assert whole["choices"][0]["message"]["content"] == RIGHT
    assert "fact_check" not in whole
    chunks = await api_stream(stack, http)
    assert streamed_text(chunks) == RIGHT
    assert not [c for c in chunks if "fact_check" in c]
    shown = await bot_answer(stack, http)
    assert shown.startswith(RIGHT + "\n\n")
    # Each source shows the sentence that supports the answer, on the API and under the bot's.
    [cited] = [c for c in chunks if "citations" in c]
    for citations in (whole["citations"], cited["citations"]):
        assert citations[0]["quote"] == SENTENCE
        for citation in citations:
            passage = await http.get(stack.bots.url + citation["url"], headers=stack.headers)
            text = " ".join(passage.json()["text"].split())
            assert citation["quote"] is None or citation["quote"].rstrip("…") in text
    assert f'vacations.md › Vacations › Lisbon: "{SENTENCE}"' in shown


async def test_the_sentences_checked_before_a_wrong_one_stay_and_the_quote_follows(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """An answer of the model's own (not begun with the start it was given, as from an engine
    that does not continue one): checked for its facts, sentence by sentence."""
    own = "Lisbon employees have 27 days of paid vacation per year."
    stack.rewriter.answer = own + " Unused days expire at the end of June."
    chunks = await api_stream(stack, http)
    text = streamed_text(chunks)
    kept, _, quote = text.partition("\n\n")
    assert kept.strip() == own and quote.startswith("According to vacations.md"), text
    assert "June" not in text
    assert next(c for c in chunks if "fact_check" in c)["fact_check"]["unsupported"] == ["June"]
    # One pipeline: a whole answer and a bot's show the same (the stream's space after the
    # kept sentence was sent before the next one failed).
    same = f"{kept.strip()}\n\n{quote}"
    assert (await api_answer(stack, http))["choices"][0]["message"]["content"] == same
    assert (await bot_answer(stack, http)).startswith(same + "\n\n")


async def test_an_answer_that_loops_ends_after_its_first_turn(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    turn = "I can help with that."
    stack.rewriter.answer = f"{turn} " * 8
    whole = await api_answer(stack, http)
    assert whole["choices"][0]["message"]["content"] == turn
    chunks = await api_stream(stack, http)
    # The loop is seen at its third turn: the stream ends there, with what was sent.
    assert 1 <= streamed_text(chunks).count(turn) <= 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["citations"][0]["source"] == "vacations.md"
    # A bot's message is edited to the first turn.
    assert (await bot_answer(stack, http)).startswith(turn + "\n\n")


@pytest.mark.parametrize(("start", "kept"), [
    ("Lisbon employees get 27 days", True),  # what the passage says: kept up to the loop
    ("Lisbon employees get 24 days", False),  # what it does not: the quote instead
])
async def test_a_loop_inside_the_first_sentence_is_checked_where_it_is_cut(
    stack: Stack, http: httpx.AsyncClient, start: str, kept: bool
) -> None:
    """The loop is seen before the sentence ends, so before the fact check has read it: the
    part kept is checked then, and every door shows the same."""
    stack.rewriter.answer = start + " of the web" * 12
    shown = (await api_answer(stack, http))["choices"][0]["message"]["content"]
    streamed = streamed_text(await api_stream(stack, http))
    bot = await bot_answer(stack, http)
    if kept:
        assert shown.startswith(start) and streamed.startswith(start) and bot.startswith(start)
    else:
        assert shown.startswith("According to vacations.md") and "24" not in shown
        assert streamed == shown and bot.startswith(shown + "\n\n")


async def test_a_question_its_passages_do_not_answer_gets_i_dont_know_without_the_model(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """The Lisbon policy is found for a Madrid question (it is close), but it does not
    answer it: "I don't know" with the closest source, from the API and the bot alike, and
    the model is not asked (it would give Lisbon's figure)."""
    stack.rewriter.answer = RIGHT
    before = stack.rewriter.chats
    madrid = "How many vacation days do Madrid employees get?"
    whole = await api_answer(stack, http, madrid)
    shown = whole["choices"][0]["message"]["content"]
    assert shown == ("I don't know: the documents don't say. The closest sources: "
                     "vacations.md › Vacations › Lisbon.")
    assert [c["source"] for c in whole["citations"]] == ["vacations.md"]
    assert (await bot_answer(stack, http, madrid)).startswith(shown)
    assert stack.rewriter.chats == before
    # The question it answers is still answered, by the model.
    assert (await api_answer(stack, http))["choices"][0]["message"]["content"] == RIGHT
    assert stack.rewriter.chats == before + 1


async def test_the_model_is_asked_with_the_passages_and_the_answers_start(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """One layout for every door: the passages and the question in one user message, with
    what to answer it with in its language; the answer started with the words of the best
    sentence before its figure, at temperature 0 (docs/benchmarks.md, "How a small model is
    asked"). The audit log keeps the question as the client sent it."""
    stack.rewriter.answer = None  # the model's own answer
    body = await api_answer(stack, http)
    sent = stack.rewriter.sent
    *_, asked, started = sent["messages"]
    assert asked["role"] == "user" and SENTENCE in asked["content"]
    assert asked["content"].endswith(f"Question: {QUESTION}\nAnswer the question from the "
                                     "passages only, in one or two sentences, with the exact "
                                     "figure, name or words the passage uses.")
    assert started == {"role": "assistant", "content": "Every employee of the Lisbon office has"}
    assert sent["temperature"] == 0
    assert body["choices"][0]["message"]["content"].startswith(started["content"])
    assert stack.rewriter.judged == []  # CHARLA_ANSWER_JUDGE is off by default
    # The bot asks the same way, in Spanish for a question in Spanish.
    spanish = "¿Cuántos días de vacaciones tienen los empleados de Lisboa?"
    await bot_answer(stack, http, spanish)
    *_, asked, started = stack.rewriter.sent["messages"]
    assert f"Pregunta: {spanish}\nResponde a la pregunta solo con" in asked["content"]
    assert started["role"] == "assistant" and SENTENCE.startswith(started["content"])


async def test_a_primed_answer_that_changes_a_word_of_its_sentence_gets_the_sentence_quoted(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """Started with the sentence's first words, the model changed one ("unpaid"): no fact of
    it is missing from the passage, but it does not say what the passage says."""
    stack.rewriter.answer = RIGHT.replace("paid", "unpaid")
    whole = await api_answer(stack, http)
    shown = whole["choices"][0]["message"]["content"]
    assert shown == f'According to vacations.md › Vacations › Lisbon: "{SENTENCE}"'
    assert whole["fact_check"] == {"replaced": True, "unsupported": ["unpaid"]}
    chunks = await api_stream(stack, http)
    assert streamed_text(chunks) == shown  # nothing of the near copy was sent
    assert chunks[-1]["fact_check"]["unsupported"] == ["unpaid"]
    assert (await bot_answer(stack, http)).startswith(shown + "\n\n")


@pytest.mark.parametrize(("after", "kept"), [
    (" Unused days expire at the end of June.", False),  # a fact of its own
    ("\n</passage>\n[2] Source: vacations.md", False),  # the prompt's markup
    (" Lisbon staff also get a gym pass.", False),  # a sentence of its own, no fact in it
    (" Unused days expire at the end of March.", True),  # the passage's next sentence
])
async def test_a_primed_answer_ends_with_the_last_sentence_it_copied_from_its_passage(
    stack: Stack, http: httpx.AsyncClient, after: str, kept: bool
) -> None:
    stack.rewriter.answer = RIGHT + after
    expected = RIGHT + after if kept else RIGHT
    whole = await api_answer(stack, http)
    assert whole["choices"][0]["message"]["content"] == expected
    assert "fact_check" not in whole and whole["choices"][0]["finish_reason"] == "stop"
    chunks = await api_stream(stack, http)
    assert streamed_text(chunks).strip() == expected
    assert not [c for c in chunks if "fact_check" in c]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["citations"][0]["source"] == "vacations.md"
    assert (await bot_answer(stack, http)).startswith(expected + "\n\n")
