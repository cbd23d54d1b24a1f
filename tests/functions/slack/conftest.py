"""Slack's fake on a loopback port, reset for each test, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from functions.slack.client import SlackClient
from shared.settings import Secret
from tests.conftest import ServerThread
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeSlack, ServerThread]]:
    fake = FakeSlack()
    server = ServerThread(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeSlack, ServerThread]) -> FakeSlack:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
async def slack(fake_server: tuple[FakeSlack, ServerThread]) -> AsyncIterator[SlackClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield SlackClient(fake_server[1].url, Secret(BOT_TOKEN), http)
