"""One contract for the token budget, run against each storage: memory and Redis."""

from __future__ import annotations

import uuid

import pytest

from shared.ratelimit import TokenBudget


@pytest.fixture(params=["memory://", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return str(request.param)


def budget(storage: str, amount: str = "100/hour") -> tuple[TokenBudget, list[float]]:
    now = [1000.0]
    return TokenBudget(storage, amount, f"test-{uuid.uuid4().hex}", clock=lambda: now[0]), now


def test_a_fresh_subject_has_its_whole_budget(storage: str) -> None:
    b, _ = budget(storage)
    assert b.retry_after("alice") is None
    assert b.remaining("alice") == 100


def test_spending_it_all_is_refused_at_once_with_a_true_retry_after(storage: str) -> None:
    b, _ = budget(storage)
    assert b.retry_after("alice") is None
    b.charge("alice", 120)  # not yet written to the storage...
    retry = b.retry_after("alice")  # ...but the next check writes it first
    assert retry is not None and 1 <= retry <= 3600
    assert b.remaining("alice") == 0
    assert b.retry_after("bob") is None  # per subject


def test_charges_are_written_by_flush(storage: str) -> None:
    b, _ = budget(storage)
    b.charge("carol", 30)
    b.charge("carol", 20)
    b.flush()
    other = TokenBudget(storage, "100/hour", b._prefix)  # another process, same storage
    if storage == "memory://":
        pytest.skip("memory storage is per process by design")
    assert other.remaining("carol") == 50


def test_known_headroom_skips_the_storage_for_a_second(storage: str) -> None:
    b, now = budget(storage)
    assert b.retry_after("dan") is None
    b._limiter = None  # type: ignore[assignment]  # any storage call would now fail
    for _ in range(10):
        assert b.retry_after("dan") is None
        b.charge("dan", 5)
    now[0] += 2
    with pytest.raises(AttributeError):
        b.retry_after("dan")  # stale: it goes back to the storage


def test_bad_budget_strings_are_config_errors() -> None:
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="200000/day"):
        TokenBudget("memory://", "lots", "x")
