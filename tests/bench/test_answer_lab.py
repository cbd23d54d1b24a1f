"""The answer lab's counts: a change is kept or dropped on them, so each must mean what it says."""

from __future__ import annotations

from bench.answer_lab import Tally, judge, question_sets
from shared.knowledge.search import Passage

STIPEND = Passage(chunk_id=1, document_id=1, collection="lab", source="oncall.md", title=None,
                  heading="On call", page=None, distance=0.1, score=1.0,
                  content="The office is on the 9th floor. Engineers on call receive a "
                          "stipend of $250 per week.")


def test_a_question_answered_with_its_fact_counts_as_quoted() -> None:
    tally = Tally()
    judge(tally, {"id": "a", "question": "How much is the on-call stipend per week?",
                  "source": "oncall.md", "fact": "$250"}, [STIPEND])
    assert (tally.answerable, tally.in_passages, tally.quoted, tally.refused) == (1, 1, 1, 0)
    assert tally.misses == []


def test_a_fact_in_the_passages_but_not_in_the_best_sentence_is_a_miss() -> None:
    tally = Tally()
    judge(tally, {"id": "b", "question": "Which floor is the on-call office on?",
                  "source": "oncall.md", "fact": "$250"}, [STIPEND])
    assert (tally.answerable, tally.in_passages, tally.quoted) == (1, 1, 0)
    assert tally.misses and tally.misses[0].startswith("b: ")


def test_refusals_are_counted_by_the_kind_of_question() -> None:
    tally = Tally()
    judge(tally, {"id": "n", "question": "How much is the on-call stipend in Lisbon?",
                  "source": None, "near": "oncall.md"}, [STIPEND])
    judge(tally, {"id": "o", "question": "Can I bring my dog?", "source": None}, [STIPEND])
    judge(tally, {"id": "c", "question": "How much is the on-call stipend in Lisbon?",
                  "source": "oncall.md", "fact": "$250"}, [STIPEND])
    assert (tally.near, tally.near_refused, tally.off, tally.off_refused) == (1, 1, 1, 1)
    assert (tally.answerable, tally.refused, tally.quoted) == (1, 1, 0)
    assert [miss.split(":")[0] for miss in tally.misses] == ["c"]


def test_a_near_topic_question_answered_is_a_miss() -> None:
    tally = Tally()
    judge(tally, {"id": "n", "question": "How much is the on-call stipend for managers?",
                  "source": None, "near": "oncall.md"}, [STIPEND])
    assert (tally.near, tally.near_refused) == (1, 0)
    assert tally.misses == ["n (near-topic): How much is the on-call stipend for managers? | "
                            "answered with 'Engineers on call receive a stipend of $250 per "
                            "week.'"]


def test_every_question_set_is_measured() -> None:
    names = [path.stem for path in question_sets()]
    assert names[0] == "questions" and "heldout-crosslingual" in names and "heldout-5" in names
