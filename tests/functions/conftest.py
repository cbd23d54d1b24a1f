"""Fixtures for the bots end to end (see tests/functions/bots.py), and for answers a test
chooses (tests/functions/rewriting.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from functions.knowledge import Knowledge
from functions.model_client import ModelClient
from shared.db import Database, make_pool
from tests.conftest import Gateway, ServerThread, fresh_database
from tests.fakes.slack_api import TEAM_ID
from tests.functions.bots import Bots, start_bots
from tests.functions.rewriting import VACATIONS, Rewriter, Stack


@pytest.fixture(scope="session")
def bots(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
         redis_url: str) -> Iterator[Bots]:
    running = start_bots(service_keys, gateway.url, pg_url, redis_url)
    yield running
    running.stop()


@pytest.fixture
def stateless_bots(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
                   redis_url: str) -> Iterator[Bots]:
    """Bots that keep no conversation at all (CHARLA_CONVERSATION_RETENTION_DAYS=0)."""
    running = start_bots(service_keys, gateway.url, fresh_database(pg_url), redis_url,
                         CHARLA_CONVERSATION_RETENTION_DAYS="0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def rewritten(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
              redis_url: str) -> Iterator[tuple[Bots, Rewriter]]:
    yield from proxied(service_keys, gateway, pg_url, redis_url)


@pytest.fixture(scope="module")
async def stack(rewritten: tuple[Bots, Rewriter]) -> AsyncIterator[Stack]:
    """The vacation policy, granted to one API client and one Slack channel."""
    yield await vacation_stack(*rewritten)


@pytest.fixture(scope="module")
def judging(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
            redis_url: str) -> Iterator[tuple[Bots, Rewriter]]:
    """As ``rewritten``, with the answer judge on (CHARLA_ANSWER_JUDGE), and what is sent to
    the model redacted (CHARLA_REDACT_MODEL_INPUT)."""
    yield from proxied(service_keys, gateway, pg_url, redis_url, CHARLA_ANSWER_JUDGE="on",
                       CHARLA_REDACT_MODEL_INPUT="on")


def proxied(service_keys: tuple[str, str], gateway: Gateway, pg_url: str, redis_url: str,
            **extra: str) -> Iterator[tuple[Bots, Rewriter]]:
    """Bots of their own database that reach the model server through a :class:`Rewriter`,
    with answers of 24 tokens and the ``extra`` settings."""
    rewriter = Rewriter(gateway.url)
    proxy = ServerThread(rewriter.app()).start()
    bots = start_bots(service_keys, proxy.url, fresh_database(pg_url), redis_url,
                      CHARLA_BOT_MAX_TOKENS="24", **extra)
    yield bots, rewriter
    bots.stop()
    proxy.stop()


@pytest.fixture(scope="module")
async def judged_stack(judging: tuple[Bots, Rewriter]) -> AsyncIterator[Stack]:
    """The vacation policy, granted as for ``stack``, with the answer judge on."""
    yield await vacation_stack(*judging)


async def vacation_stack(bots: Bots, rewriter: Rewriter) -> Stack:
    """The vacation policy ingested, granted to one API client and one Slack channel."""
    db = Database(make_pool(bots.settings))
    model = ModelClient(bots.settings)
    try:
        kb = Knowledge(db, model)
        name = f"vacations-{uuid.uuid4().hex[:6]}"
        ingestor = kb.ingestor("test:setup")
        collection = await ingestor.collection(name)
        [outcome] = await ingestor.ingest(collection, [("vacations.md", VACATIONS)])
        assert outcome.status == "added"
        channel, client = f"C{uuid.uuid4().hex[:9].upper()}", f"app-{uuid.uuid4().hex[:6]}"
        await kb.store.grant(name, f"slack:{TEAM_ID}:{channel}")
        await kb.store.grant(name, f"api:{client}")
    finally:
        await model.close()
        await db.close()
    return Stack(bots, rewriter, channel, client, name)
