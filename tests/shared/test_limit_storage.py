"""One contract for the request-limit storages (memory, Redis, Redis merged in the background),
then what only the merged one promises: shared counts across processes, and no outage."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from limits import parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter

from shared.limit_storage import SyncedRedisStorage
from shared.ratelimit import make_limiter


@pytest.fixture(params=["memory", "redis", "synced"])
def storage(request: pytest.FixtureRequest, redis_url: str) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    if request.param == "redis":
        return RedisStorage(redis_url)
    return SyncedRedisStorage("charla+" + redis_url)


def test_contract_a_limit_allows_then_refuses(storage: Storage) -> None:
    limiter = FixedWindowRateLimiter(storage)
    item, who = parse("3/minute"), uuid.uuid4().hex
    assert [limiter.hit(item, "t", who) for _ in range(4)] == [True, True, True, False]
    reset, remaining = limiter.get_window_stats(item, "t", who)
    assert remaining == 0
    assert 0 < reset - time.time() <= 60
    assert limiter.hit(item, "t", uuid.uuid4().hex)  # another subject
    assert limiter.test(item, "t", uuid.uuid4().hex)


def test_contract_costs_count(storage: Storage) -> None:
    limiter = FixedWindowRateLimiter(storage)
    item, who = parse("10/minute"), uuid.uuid4().hex
    assert limiter.hit(item, "c", who, cost=7)
    assert not limiter.hit(item, "c", who, cost=4)


def test_merged_counts_are_shared_between_processes(redis_url: str) -> None:
    one = SyncedRedisStorage("charla+" + redis_url, background=False)
    two = SyncedRedisStorage("charla+" + redis_url, background=False)  # another process
    key = f"shared-{uuid.uuid4().hex}"
    for _ in range(3):
        one.incr(key, 60)
    two.incr(key, 60)
    one.sync()
    two.sync()
    one.sync()
    assert one.get(key) == 4
    assert two.get(key) == 4
    assert RedisStorage(redis_url).get(key) == 4
    one.close()
    two.close()


def test_windows_end_by_the_injected_clock(redis_url: str) -> None:
    now = [1_000_000.0]
    store = SyncedRedisStorage("charla+" + redis_url, clock=lambda: now[0], background=False)
    key = f"clock-{uuid.uuid4().hex}"
    assert store.incr(key, 10) == 1
    assert store.get_expiry(key) == now[0] + 10
    now[0] += 11
    assert store.get(key) == 0
    assert store.incr(key, 10) == 1


def test_redis_outage_keeps_counting_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    store = SyncedRedisStorage("charla+redis://127.0.0.1:1/0", background=False,
                               socket_connect_timeout=0.2)
    key = f"down-{uuid.uuid4().hex}"
    with caplog.at_level(logging.WARNING, logger="shared.limit_storage"):
        assert store.incr(key, 60) == 1
        store.sync()
        store.sync()
        assert store.incr(key, 60) == 2  # nothing lost, nothing double-counted
    assert caplog.text.count("unreachable") == 1


def test_slowapi_gets_the_merged_storage_for_redis(redis_url: str) -> None:
    assert isinstance(make_limiter(redis_url, "x")._storage, SyncedRedisStorage)
    assert isinstance(make_limiter("memory://", "x")._storage, MemoryStorage)
