"""The collection-name rule: Python's check and the database's CHECK constraint agree."""

from __future__ import annotations

import psycopg
import pytest

from shared.errors import BadRequest
from shared.knowledge.names import (
    RULE,
    InvalidCollectionName,
    collection_name,
    is_collection_name,
)

GOOD = ["a", "0", "hr", "a" * 63, "a-b_c", "9lives", "team-2026_q1"]
BAD = ["", "../x", "a;drop table", "x" * 500, "a" * 64, "Upper", "-x", "_x", "a b", "a\n",
       "é", "a.b", "\uff41", "hr/x", "a\t"]


@pytest.mark.parametrize("name", GOOD + BAD)
def test_the_rule_is_the_databases(pg_url: str, name: str) -> None:
    with psycopg.connect(pg_url) as conn:  # one transaction, rolled back: nothing is kept
        try:
            conn.execute("INSERT INTO collections (name, embedding_model, dimensions)"
                         " VALUES (%s, 'm', 384)", (name,))
            stored = True
        except psycopg.errors.CheckViolation:
            stored = False
        conn.rollback()
    assert is_collection_name(name) is stored is (name in GOOD)


@pytest.mark.parametrize("name", [*BAD, "a\x00", None, 7, ["hr"]])
def test_a_bad_name_is_refused_with_the_rule_and_a_short_echo(name: object) -> None:
    with pytest.raises(InvalidCollectionName) as caught:
        collection_name(name, "collections")
    assert isinstance(caught.value, BadRequest) and caught.value.param == "collections"
    message = str(caught.value)
    assert RULE in message and len(message) < 250  # 500 characters are not echoed back


@pytest.mark.parametrize("name", GOOD)
def test_a_good_name_passes_unchanged(name: str) -> None:
    assert collection_name(name) == name
