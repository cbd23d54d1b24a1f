"""Answers from the team's documents: granted collections only, with sources, or "I don't know"."""

from __future__ import annotations

import uuid

import httpx
import pytest

from functions.knowledge import DONT_KNOW, Knowledge
from functions.model_client import ModelClient
from shared.db import Database, make_pool
from tests.fakes.slack_api import TEAM_ID
from tests.functions.bots import Bots
from tests.functions.test_bots_slack import answered, mention

HANDBOOK = b"""# Office handbook

## Bicycles

Bicycles are parked in the basement garage, level -1, behind the blue door.

## Guests

Guests sign in at the reception desk on the second floor and wear a visitor badge.
"""

SALARIES = b"""# Salary bands

## Engineering

Band E3 pays between 61,000 and 74,000 euros a year. Bicycles are not covered.
"""


@pytest.fixture(scope="module")
async def library(bots: Bots) -> dict[str, str]:
    """Two collections: the handbook, granted to one channel; salaries, granted to nobody."""
    db = Database(make_pool(bots.settings))
    model = ModelClient(bots.settings)
    kb = Knowledge(db, model)
    names = {"handbook": f"handbook-{uuid.uuid4().hex[:6]}",
             "salaries": f"salaries-{uuid.uuid4().hex[:6]}",
             "channel": f"C{uuid.uuid4().hex[:9].upper()}"}
    ingestor = kb.ingestor("test:setup")
    for key, text in (("handbook", HANDBOOK), ("salaries", SALARIES)):
        collection = await ingestor.collection(names[key])
        outcomes = await ingestor.ingest(collection, [(f"{key}.md", text)])
        assert outcomes[0].status == "added"
    await kb.store.grant(names["handbook"], f"slack:{TEAM_ID}:{names['channel']}")
    await model.close()
    await db.close()
    return names


async def test_an_answer_from_a_granted_collection_cites_its_source(
    bots: Bots, library: dict[str, str], http: httpx.AsyncClient
) -> None:
    body = mention("Where do I park my bicycle?", channel=library["channel"])
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert "Sources:" in answer
    assert "handbook.md › Office handbook › Bicycles" in answer
    assert "salaries" not in answer


async def test_nothing_relevant_in_the_documents_means_i_dont_know(
    bots: Bots, library: dict[str, str], http: httpx.AsyncClient
) -> None:
    body = mention("What was the score of last night's football match?",
                   channel=library["channel"])
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert answer == DONT_KNOW.format(whom="this chat", names=library["handbook"])


async def test_a_channel_without_grants_gets_no_documents(
    bots: Bots, library: dict[str, str], http: httpx.AsyncClient
) -> None:
    body = mention("How much does band E3 pay?")  # a channel of its own, granted nothing
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert "Sources:" not in answer
    assert "61,000" not in answer and "74,000" not in answer
