"""Fixtures for the bots end to end (see tests/functions/bots.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Gateway, fresh_database
from tests.functions.bots import Bots, start_bots


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
