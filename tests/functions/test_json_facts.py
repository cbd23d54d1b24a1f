"""The fact check of a JSON answer's values (functions/json_facts.py)."""

from __future__ import annotations

import pytest

from functions.json_facts import JsonFacts, literals, values

PASSAGE = ("Every employee of the Lisbon office has 27 days of paid vacation per year. The "
           "mileage rate is 0,26 € per kilometre. Unused days expire at the end of March.")
SCHEMA = {"type": "object", "properties": {
    "level": {"enum": ["High", "Low"]}, "kind": {"const": "Policy"},
    "office": {"type": "string"}}}


def verdict(answer: str) -> tuple[str, ...]:
    gate = JsonFacts([PASSAGE], literals(SCHEMA))
    failed = gate.feed(answer, whole=True)
    assert (gate.checked == len(answer)) == (failed is None)
    return () if failed is None else failed.unsupported


def test_values_are_the_strings_that_are_not_keys_and_the_numbers() -> None:
    assert list(values('{"Office": "Lisbon", "days": 27, "rate": 2.6e-1, "ok": true, '
                       '"tags": ["a \\"b\\""], "n": -3}')) == [
        "Lisbon", "27", "0.26", 'a "b"', "-3"]
    assert list(values('{"office": "Lisbon", "days": 2')) == ["Lisbon", "2"]  # cut short
    # A number too long to write out is read as written, not turned into 99,999 digits.
    assert list(values('{"n": 1e99999, "m": 1e-99999}')) == ["1e99999", "1e-99999"]
    assert verdict('{"n": 1e999999999}') == ("1e999999999",)


@pytest.mark.parametrize(("answer", "unsupported"), [
    ('{"office": "Lisbon", "days": 27}', ()),
    ('{"office": "Lisbon", "days": 24}', ("24",)),
    ('{"office": "Madrid", "days": 27}', ("Madrid",)),  # a one-word value is a name
    ('{"rate": 0.26, "expires": "end of March"}', ()),  # a number by value, "0,26" in it
    ('{"days": 27.0, "summary": "Lisbon staff get 27 days."}', ()),
    ('{"summary": "Staff in Paris get 27 days."}', ("Paris",)),  # within a sentence too
    ('{"level": "High", "kind": "Policy", "note": "Unknown"}', ()),  # the schema's, no fact
    ('{"level": "Urgent"}', ("Urgent",)),  # not one the schema names
    ('{"Madrid": "yes", "Paris": 27}', ()),  # keys are the schema's words
])
def test_each_value_must_be_stated_by_the_passages(answer: str, unsupported: tuple[str, ...]
                                                   ) -> None:
    assert verdict(answer) == unsupported


def test_nothing_is_checked_or_shown_before_the_answer_is_whole() -> None:
    gate = JsonFacts([PASSAGE])
    assert gate.feed('{"office": "Madrid", ', whole=False) is None and gate.checked == 0
    assert gate.feed('{"office": "Madrid", "days": 1}', whole=True) is not None
    assert gate.checked == 0
