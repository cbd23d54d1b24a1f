"""One contract for quotas (the gateway's request limits and token budgets), run on memory and
on Redis. The API's own limit is slowapi's: tests/functions/api/test_rate_limit.py."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from shared.errors import ConfigError
from shared.ratelimit import FORGETS_KEY, Quota

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call fails fast


@pytest.fixture(params=["memory://", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return str(request.param)


def quota(storage: str, rate: str = "100/hour") -> tuple[Quota, list[float]]:
    now = [1000.0]
    return Quota(storage, rate, f"test-{uuid.uuid4().hex}", clock=lambda: now[0]), now


class CountingLimiter:
    """Wraps a quota's storage limiter to count the calls that reach it."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        self.calls += 1
        return getattr(self.inner, name)


def test_a_fresh_subject_has_its_whole_allowance(storage: str) -> None:
    q, _ = quota(storage)
    assert q.retry_after("alice") is None
    assert q.remaining("alice") == 100


def test_spending_it_all_is_refused_at_once_with_a_true_retry_after(storage: str) -> None:
    q, _ = quota(storage)
    assert q.retry_after("alice") is None
    q.charge("alice", 120)  # not yet written to the storage...
    retry = q.retry_after("alice")  # ...but the next check writes it first
    assert retry is not None and 1 <= retry <= 3600
    assert q.remaining("alice") == 0
    assert q.retry_after("bob") is None  # per subject


def test_take_counts_requests_and_refuses_the_one_over(storage: str) -> None:
    q, _ = quota(storage, "3/minute")
    assert [q.take("carol") for _ in range(3)] == [None, None, None]
    retry = q.take("carol")
    assert retry is not None and 1 <= retry <= 60
    assert q.remaining("carol") == 0
    assert q.take("dave") is None


def test_charges_are_written_by_flush(storage: str) -> None:
    q, _ = quota(storage)
    assert not q.pending
    q.charge("carol", 30)
    q.charge("carol", 20)
    assert q.pending
    q.flush()
    assert not q.pending
    other = Quota(storage, "100/hour", q._prefix)  # another process, same storage
    if storage == "memory://":
        assert other.remaining("carol") == 100  # memory is per process by design
    else:
        assert other.remaining("carol") == 50


def test_a_share_of_known_headroom_is_used_without_the_storage(storage: str) -> None:
    q, now = quota(storage)
    counting = CountingLimiter(q._storages.shared)
    q._storages.shared = counting  # type: ignore[assignment]
    assert q.take("erin") is None  # asks the storage: 100 left, a quarter usable here
    asked = counting.calls
    for _ in range(20):
        assert q.take("erin") is None
    assert counting.calls == asked  # within the share: no storage call
    for _ in range(10):
        assert q.take("erin") is None
    assert counting.calls > asked  # the share is spent: it asks again
    asked = counting.calls
    now[0] += 2
    assert q.take("erin") is None
    assert counting.calls > asked  # stale after FRESH_S: it asks again
    assert q.remaining("erin") == 100 - 32


def test_two_processes_on_one_storage_stay_near_the_limit(redis_url: str) -> None:
    a, _ = quota(redis_url, "40/hour")
    b = Quota(redis_url, "40/hour", a._prefix, clock=lambda: 1000.0)
    allowed = 0
    for _ in range(40):
        allowed += a.take("fay") is None
        allowed += b.take("fay") is None
    # Each process trusts a quarter of what it last saw, so together they stop near 40.
    assert 40 <= allowed <= 50
    assert a.take("fay") is not None and b.take("fay") is not None


def test_storage_down_counts_in_process_then_recovers(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    q, now = quota(UNREACHABLE, "2/hour")
    with caplog.at_level(logging.WARNING, logger="shared.ratelimit"):
        assert q.take("gus") is None
        assert q.take("gus") is None
        assert q.take("gus") is not None  # still limited, by this process's counters
    assert "unreachable" in caplog.text
    # Meanwhile nothing waits on the storage: not even to learn what it missed.
    counting = CountingLimiter(q._storages.shared)
    q._storages.shared = counting  # type: ignore[assignment]
    assert q.take("gus") is not None and counting.calls == 0
    # When the storage is back, it is used again after RETRY_STORAGE_S.
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    q._storages.shared = FixedWindowRateLimiter(storage_from_string(redis_url))
    now[0] += Quota.RETRY_STORAGE_S + 1
    # Someone was forgotten meanwhile: the quota learns of it on its first call that reaches
    # the storage, so what it charges from then on is written (shared/privacy.py, forget).
    with redis.Redis.from_url(redis_url) as client:
        client.incr(FORGETS_KEY)
    assert q.take("gus") is None
    q.flush()
    assert q.remaining("gus") == 1


def test_bad_rate_strings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="200000/day"):
        Quota("memory://", "lots", "x")


def test_the_last_part_of_an_allowance_is_taken_once(redis_url: str) -> None:
    """Check and charge are one step at the end of an allowance: a hold bigger than what is
    left takes it (overshooting by at most its own cost), and the next, from this process or
    another, is refused, though neither process has written anything by flush."""
    a, _ = quota(redis_url)
    b = Quota(redis_url, "100/hour", a._prefix, clock=lambda: 1000.0)
    assert a.take("gil", 95) is None
    assert b.take("gil", 50) is None  # 5 were left: this one takes them
    assert a.take("gil", 50) is not None
    assert b.take("gil", 1) is not None
    assert a.remaining("gil") == 0


def test_a_hold_given_back_never_goes_below_nothing(storage: str) -> None:
    q, _ = quota(storage)
    assert q.take("hal", 60) is None
    q.charge("hal", -45)  # the work cost 15 of the 60 held
    q.flush()
    assert q.remaining("hal") == 85
    q.charge("hal", -40)  # more than is counted: only down to nothing
    q.flush()
    assert q.remaining("hal") == 100
    assert q.take("hal", 100) is None  # and not a credit beyond the allowance
    assert q.take("hal", 1) is not None


def test_a_hold_given_back_after_its_window_leaves_no_counter(redis_url: str) -> None:
    q, _ = quota(redis_url)
    assert q.take("ike", 60) is None
    with redis.Redis.from_url(redis_url) as client:
        [key] = client.keys(f"*{q._prefix}*ike*")
        client.delete(key)  # the window ended
        q.charge("ike", -50)
        q.flush()
        assert client.keys(f"*{q._prefix}*ike*") == []  # no negative counter without a TTL
    assert q.remaining("ike") == 100
