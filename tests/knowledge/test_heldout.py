"""The held-out question sets of bench/ (see tests/knowledge/test_evalset.py for the evaluation
set itself): written apart from the word lists they check and from the evaluation set, so that
a figure measured on them says how the answers do on questions nobody tuned for."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.knowledge.test_evalset import (
    ANSWERABLE_KEYS,
    FACT_KINDS,
    UNANSWERABLE_KEYS,
    corpus,
    doc_language,
    language,
    normalize,
    questions,
)

BENCH = Path(__file__).resolve().parents[2] / "bench"
# Questions written apart from the word lists they check (functions/glossary.txt,
# functions/places.txt) and from the set above: the second also without seeing the first.
HELDOUT = (BENCH / "heldout-crosslingual.json", BENCH / "heldout-2.json")


@cache
def heldout() -> list[dict[str, Any]]:
    """The held-out sets' answerable questions, each asked in the other language than its
    document."""
    items: list[dict[str, Any]] = [q for path in HELDOUT
                                   for q in json.loads(path.read_text("utf-8"))]
    return [q for q in items if q["source"] is not None]


@cache
def heldout_near() -> list[dict[str, Any]]:
    """The held-out sets' near-topic questions: no document states what they ask."""
    items: list[dict[str, Any]] = [q for path in HELDOUT
                                   for q in json.loads(path.read_text("utf-8"))]
    return [q for q in items if q["source"] is None]


def test_the_heldout_sets_ask_each_document_in_the_other_language() -> None:
    items = heldout()
    assert len({q["id"] for q in items}) == len(items) == 48
    assert Counter(q["lang"] for q in items) == {"es": 24, "en": 24}
    asked = {q["question"] for q in questions()}
    for q in items:
        assert set(q) == ANSWERABLE_KEYS and q["fact_kind"] in FACT_KINDS, q["id"]
        assert q["lang"] != doc_language(q["source"]), q["id"]
        assert language(q["question"])[0] == q["lang"], q["id"]
        assert q["question"] not in asked, q["id"]


def test_the_heldout_near_topic_questions_name_their_near_document() -> None:
    items = heldout_near()
    assert len({q["id"] for q in items}) == len(items) == 12
    assert Counter(q["lang"] for q in items) == {"es": 6, "en": 6}
    asked = {normalize(q["question"]) for q in questions() + heldout()}
    for q in items:
        assert set(q) == UNANSWERABLE_KEYS and q["near"] in corpus(), q["id"]
        assert language(q["question"])[0] == q["lang"], q["id"]
        assert normalize(q["question"]) not in asked, q["id"]


# Three more, each written apart from all of the above and from each other: answerable questions
# asked in their document's language (?s*) and in the other one (?x*), and near-topic ones
# (?n*). The fourth is for measuring what comes after the third was read (docs/benchmarks.md,
# "Answers to questions written apart"); the fifth, after the fourth was used to confirm.
WHOLE = {"h": BENCH / "heldout-3.json", "f": BENCH / "heldout-4.json",
         "v": BENCH / "heldout-5.json"}


@cache
def whole(prefix: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(WHOLE[prefix].read_text("utf-8"))
    return items


@pytest.mark.parametrize("prefix", sorted(WHOLE))
def test_the_later_heldout_sets_ask_in_both_languages_and_near_the_topic(prefix: str) -> None:
    items = whole(prefix)
    kinds = Counter(q["id"][:2] for q in items)
    assert kinds == {f"{prefix}s": 24, f"{prefix}x": 12, f"{prefix}n": 12}
    assert len({q["id"] for q in items}) == len(items)
    earlier = [q for other in sorted(WHOLE) if other < prefix for q in whole(other)]
    asked = {normalize(q["question"])
             for q in questions() + heldout() + heldout_near() + earlier}
    for q in items:
        assert language(q["question"])[0] == q["lang"], q["id"]
        assert normalize(q["question"]) not in asked, q["id"]
        if q["id"][1] == "n":
            assert set(q) == UNANSWERABLE_KEYS and q["near"] in corpus(), q["id"]
            continue
        assert set(q) == ANSWERABLE_KEYS and q["fact_kind"] in FACT_KINDS, q["id"]
        same = q["lang"] == doc_language(q["source"])
        assert same == (q["id"][1] == "s"), q["id"]
    for kind in kinds:
        assert Counter(q["lang"] for q in items if q["id"].startswith(kind)) == {
            "es": kinds[kind] // 2, "en": kinds[kind] // 2}, kind
    assert {q["source"] for q in items if q["source"]} == set(corpus())


@pytest.mark.parametrize("item", heldout() + [q for p in sorted(WHOLE) for q in whole(p)
                                               if q["source"]],
                         ids=lambda q: str(q["id"]))
def test_a_heldout_answer_phrase_is_once_in_its_source_and_holds_its_fact(
        item: dict[str, Any]) -> None:
    phrase = normalize(item["answer_contains"])
    found = {name: n for name, text in corpus().items() if (n := normalize(text).count(phrase))}
    assert found == {item["source"]: 1}, f"{item['id']}: {item['answer_contains']!r} in {found}"
    fact = rf"(?<!\w){re.escape(item['fact'])}(?!\w)"
    assert re.search(fact, item["answer_contains"]), item["id"]
