"""The one de-duplicating statement both queues use (shared/queue/dedup.py), on its own."""

from __future__ import annotations

import uuid

import pytest

from shared.db import Database
from shared.queue.dedup import Deliveries, Delivery
from tests.conftest import fresh_database


@pytest.fixture(scope="module")
def own_url(pg_url: str) -> str:
    return fresh_database(pg_url)


@pytest.fixture
def db(own_db: Database) -> Database:
    return own_db


def delivery(key: str, sent_as: str | None = None) -> Delivery:
    return Delivery("slack", key, "answer", {}, sent_as=sent_as)


async def test_an_accept_is_never_sent_again(db: Database) -> None:
    key, other = uuid.uuid4().hex, uuid.uuid4().hex
    deliveries = Deliveries(db)
    # A second copy in the same batch is a redelivery; so is a copy in a later batch.
    assert await deliveries.accept([delivery(key), delivery(key), delivery(other)]) == [
        True, False, True]
    assert await deliveries.accept([delivery(key)]) == [False]
    assert await deliveries.accept([]) == []


async def test_a_send_runs_again_and_its_copies_do_not(db: Database) -> None:
    key = uuid.uuid4().hex
    deliveries = Deliveries(db, sends=True)
    assert await deliveries.accept([delivery(key, "X")]) == [True]
    # Its own message back (a retry, a redrive) runs again, even behind a copy in a batch.
    assert await deliveries.accept([delivery(key, "Y"), delivery(key, "X")]) == [False, True]
    fresh = uuid.uuid4().hex  # new in a batch with two sends: the first one carries it
    assert await deliveries.accept([delivery(fresh, "Q"), delivery(fresh, "P")]) == [True, False]


async def test_a_send_given_to_a_record_of_accepts_is_refused_before_the_database(
    db: Database
) -> None:
    """A record of accepts keeps no sends: a delivery carrying one is a caller's mistake, which
    would otherwise be taken as a redelivery of its key and dropped."""
    key = uuid.uuid4().hex
    with pytest.raises(ValueError, match="send"):
        await Deliveries(db).accept([delivery(key), delivery(key, "X")])
    assert await Deliveries(db).accept([delivery(key)]) == [True]  # nothing was recorded
