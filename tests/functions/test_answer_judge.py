"""The answer judge (CHARLA_ANSWER_JUDGE, functions/judge.py): the model's "no" is "I don't know"
with the closest sources, through the API and the bots alike, and the model is not asked to
answer; its "yes", a word that is neither, and a failure leave the answer to the rule.

Real functions app, worker, model server and Postgres, with the judge on. Between them and the
model server, the proxy of tests/functions/rewriting.py answers the judge's questions with a
chosen word (the bundled model's own yes and no do not follow the passages: docs/benchmarks.md)
and puts a chosen answer in place of the model's. Slack is the fake on loopback.
"""

from __future__ import annotations

import httpx
import pytest

from functions.judge import INSTRUCTION, JUDGE_TOKENS, verdict
from tests.functions.rewriting import QUESTION, RIGHT, SENTENCE, Stack
from tests.functions.test_answers_checked import api_answer, bot_answer

DONT_KNOW = ("I don't know: the documents don't say. The closest sources: "
             "vacations.md › Vacations › Lisbon.")


def judged_by(stack: Stack, word: str | None, status: int | None = None) -> None:
    stack.rewriter.answer, stack.rewriter.call = RIGHT, None
    stack.rewriter.verdict, stack.rewriter.judge_status = word, status
    stack.rewriter.judge_held = False


async def test_the_judge_s_no_is_i_dont_know_and_the_model_is_not_asked_to_answer(
    judged_stack: Stack, http: httpx.AsyncClient
) -> None:
    judged_by(judged_stack, "No.")
    before, asked = judged_stack.rewriter.chats, len(judged_stack.rewriter.judged)
    whole = await api_answer(judged_stack, http)
    assert whole["choices"][0]["message"]["content"] == DONT_KNOW
    assert [c["source"] for c in whole["citations"]] == ["vacations.md"]
    assert (await bot_answer(judged_stack, http)).startswith(DONT_KNOW)
    assert judged_stack.rewriter.chats == before  # only the judge was asked
    assert len(judged_stack.rewriter.judged) == asked + 2  # once for each door
    # What the judge is asked: its instruction, the passages fenced, the question; one word.
    body = judged_stack.rewriter.judged[-2]
    system, passages, question = body["messages"]
    assert system == {"role": "system", "content": INSTRUCTION}
    assert passages["role"] == "system" and SENTENCE in passages["content"]
    assert passages["content"].startswith("Reference material follows.")
    assert question == {"role": "user", "content": f"Question: {QUESTION}\nDo the passages "
                        "state the answer? Answer yes or no."}
    assert body["max_tokens"] == JUDGE_TOKENS and body["temperature"] == 0


async def test_the_judge_s_yes_lets_the_model_answer(
    judged_stack: Stack, http: httpx.AsyncClient
) -> None:
    judged_by(judged_stack, "Yes")
    before = judged_stack.rewriter.chats
    whole = await api_answer(judged_stack, http)
    assert whole["choices"][0]["message"]["content"] == RIGHT
    assert (await bot_answer(judged_stack, http)).startswith(RIGHT)
    assert judged_stack.rewriter.chats == before + 2


@pytest.mark.parametrize(("word", "status"), [("Perhaps: it is about Lisbon.", None),
                                              (None, 503)])
async def test_a_judge_that_says_neither_or_fails_leaves_the_answer_to_the_rule(
    judged_stack: Stack, http: httpx.AsyncClient, word: str | None, status: int | None
) -> None:
    judged_by(judged_stack, word, status)
    asked = len(judged_stack.rewriter.judged)
    whole = await api_answer(judged_stack, http)
    assert whole["choices"][0]["message"]["content"] == RIGHT
    assert len(judged_stack.rewriter.judged) == asked + 1


async def test_a_judge_that_does_not_answer_in_time_leaves_the_answer_to_the_rule(
    judged_stack: Stack, http: httpx.AsyncClient
) -> None:
    """The judge's word held back past CHARLA_ANSWER_JUDGE_TIMEOUT (5 s): the model answers."""
    judged_by(judged_stack, "No.")
    judged_stack.rewriter.judge_held = True
    judged_stack.rewriter.release.clear()
    try:
        whole = await api_answer(judged_stack, http)
    finally:
        judged_stack.rewriter.release.set()
    assert whole["choices"][0]["message"]["content"] == RIGHT


async def test_a_question_the_rule_refuses_is_not_put_to_the_judge(
    judged_stack: Stack, http: httpx.AsyncClient
) -> None:
    """The Lisbon policy for a Madrid question: the rule's "I don't know", no model asked."""
    judged_by(judged_stack, "Yes")
    before, asked = judged_stack.rewriter.chats, len(judged_stack.rewriter.judged)
    whole = await api_answer(judged_stack, http,
                             "How many vacation days do Madrid employees get?")
    assert whole["choices"][0]["message"]["content"] == DONT_KNOW
    assert (judged_stack.rewriter.chats, len(judged_stack.rewriter.judged)) == (before, asked)


async def test_the_judge_is_sent_what_the_model_is_sent_redacted(
    judged_stack: Stack, http: httpx.AsyncClient
) -> None:
    """With CHARLA_REDACT_MODEL_INPUT on, the judge's question is redacted as the answer's is:
    a model host shared with others sees no e-mail address in either."""
    judged_by(judged_stack, "Yes")
    question = f"{QUESTION} Reply to ana.garcia@example.com too."
    await api_answer(judged_stack, http, question)
    judged = judged_stack.rewriter.judged[-1]["messages"][-1]["content"]
    assert "ana.garcia@example.com" not in judged and "[EMAIL]" in judged, judged
    assert "ana.garcia@example.com" not in str(judged_stack.rewriter.sent["messages"])


def test_the_judge_s_word_is_read_in_either_language() -> None:
    assert verdict("Yes.") is True and verdict("Sí") is True and verdict(" yes, it does") is True
    assert verdict("No.") is False and verdict("no, the passage is about Harbor") is False
    assert verdict("Not sure") is None and verdict("Maybe") is None and verdict("") is None
    assert verdict("Nope") is None and verdict("Yesterday") is None
