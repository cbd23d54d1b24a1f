"""Fixtures of the reply tests: the outbox on the embedded Postgres, Slack's fake, an HTTP
client for the platform clients, a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from shared.db import Database, make_pool
from shared.queue.outbox import Outbox
from shared.settings import Settings
from tests.conftest import ServerThread
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
async def outbox(pg_url: str) -> AsyncIterator[Outbox]:
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": pg_url})))
    yield Outbox(db)
    await db.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[FakeSlack, str]]:
    """Slack's fake on a loopback port, and its URL."""
    fake = FakeSlack()
    server = ServerThread(fake.app).start()
    yield fake, server.url
    server.stop()


class Clock:
    """A clock that stands still until the test moves ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()
