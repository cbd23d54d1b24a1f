"""Rate limits keyed on the verified token's subject: slowapi for requests, ``limits`` for tokens.

``memory://`` holds for one process only (fine for ``charla up``); production and the tests
name Redis. If Redis goes away, slowapi falls back to in-process counting and logs it, so a
cache outage degrades limits instead of refusing every request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import ConfigError
from shared.http import json_error, subject_of


def _storage_options(uri: str) -> dict[str, Any]:
    # Fail fast when Redis is down instead of hanging a request on it.
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    return {}


def make_limiter(storage_uri: str, key_prefix: str, *, headers: bool = False) -> Limiter:
    """A slowapi limiter whose key is the JWT subject (never the client's address)."""
    return Limiter(
        key_func=subject_of,
        storage_uri=storage_uri,
        storage_options=_storage_options(storage_uri),
        strategy="fixed-window",
        key_prefix=key_prefix,
        headers_enabled=headers,
        in_memory_fallback_enabled=True,
    )


def _seconds_until(reset_at: float) -> int:
    return max(1, math.ceil(float(reset_at) - time.time()))


def retry_after_s(limiter: Any, item: RateLimitItem, keys: list[str]) -> int:
    """Seconds until the window that refused a request resets."""
    reset_at, _remaining = limiter.get_window_stats(item, *keys)
    return _seconds_until(reset_at)


async def rate_limit_exceeded(request: Request, exc: Exception) -> Response:
    """429 with ``Retry-After``, in OpenAI's error shape."""
    assert isinstance(exc, RateLimitExceeded)
    limiter: Limiter = request.app.state.limiter
    retry = 1
    current = getattr(request.state, "view_rate_limit", None)
    if current is not None:
        try:
            retry = retry_after_s(limiter.limiter, current[0], current[1])
        except Exception:  # noqa: BLE001 - storage down: a conservative default
            retry = 60
    return json_error(
        429,
        f"rate limit exceeded ({exc.detail}); retry in {retry} s",
        "rate_limit_exceeded",
        "rate_limit_exceeded",
        headers={"Retry-After": str(retry)},
    )


class TokenBudget:
    """A per-subject allowance of tokens per window (e.g. ``200000/day``).

    Kept off the request path: charges collect in memory and :meth:`flush` writes them to the
    storage (call it every fraction of a second); what is left is remembered for a second per
    subject, so a busy user costs one storage round trip a second, not one per request. Once
    nothing is known to be left, every request asks the storage, after writing the subject's
    own pending charges, so a spent budget is refused at once and with a true Retry-After.
    """

    FRESH_S = 1.0

    def __init__(self, storage_uri: str, budget: str, key_prefix: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            self.item = parse(budget)
        except ValueError:
            raise ConfigError(f"token budget {budget!r} is not like '200000/day'") from None
        self._storage = storage_from_string(storage_uri, **_storage_options(storage_uri))
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._prefix = key_prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._known: dict[str, tuple[float, int]] = {}  # sub -> (known until, tokens left)

    def retry_after(self, sub: str) -> int | None:
        """None while ``sub`` has tokens left, else seconds until the budget renews."""
        now = self._clock()
        known = self._known.get(sub)
        if known is not None and now < known[0] and known[1] > 0:
            return None
        # Stale, or spent: ask the storage, after writing this subject's own pending charges,
        # so a refusal's Retry-After is the storage's real window, not a guess.
        self._write(sub)
        reset_at, left = self._limiter.get_window_stats(self.item, self._prefix, sub)
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[sub] = (now + self.FRESH_S, int(left))
        return None if left > 0 else _seconds_until(reset_at)

    def charge(self, sub: str, tokens: int) -> None:
        """Count ``tokens`` against ``sub`` (written to the storage by :meth:`flush`)."""
        if tokens <= 0:
            return
        with self._lock:
            self._pending[sub] = self._pending.get(sub, 0) + tokens
            known = self._known.get(sub)
            if known is not None:
                self._known[sub] = (known[0], known[1] - tokens)

    def _write(self, sub: str) -> None:
        with self._lock:
            tokens = self._pending.pop(sub, 0)
        if tokens:
            self._limiter.hit(self.item, self._prefix, sub, cost=tokens)

    def flush(self) -> None:
        """Write every pending charge to the storage."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for sub, tokens in pending.items():
            self._limiter.hit(self.item, self._prefix, sub, cost=tokens)

    def remaining(self, sub: str) -> int:
        self._write(sub)
        _reset, remaining = self._limiter.get_window_stats(self.item, self._prefix, sub)
        return int(remaining)
