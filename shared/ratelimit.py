"""Rate limits keyed on the verified token's subject: slowapi for requests, ``limits`` for tokens.

``memory://`` holds for one process only (fine for ``charla up``); production and the tests
name Redis. If Redis goes away, slowapi falls back to in-process counting and logs it, so a
cache outage degrades limits instead of refusing every request.
"""

from __future__ import annotations

import math
import time
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


def retry_after_s(limiter: Any, item: RateLimitItem, keys: list[str]) -> int:
    """Seconds until the window that refused a request resets."""
    reset_at, _remaining = limiter.get_window_stats(item, *keys)
    return max(1, math.ceil(float(reset_at) - time.time()))


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
    """A per-subject allowance of tokens per window (e.g. ``200000/day``)."""

    def __init__(self, storage_uri: str, budget: str, key_prefix: str) -> None:
        try:
            self.item = parse(budget)
        except ValueError:
            raise ConfigError(f"token budget {budget!r} is not like '200000/day'") from None
        self._storage = storage_from_string(storage_uri, **_storage_options(storage_uri))
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._prefix = key_prefix

    def retry_after(self, sub: str) -> int | None:
        """None while ``sub`` has tokens left, else seconds until the budget renews."""
        if self._limiter.test(self.item, self._prefix, sub):
            return None
        return retry_after_s(self._limiter, self.item, [self._prefix, sub])

    def charge(self, sub: str, tokens: int) -> None:
        if tokens > 0:
            self._limiter.hit(self.item, self._prefix, sub, cost=tokens)

    def remaining(self, sub: str) -> int:
        _reset, remaining = self._limiter.get_window_stats(self.item, self._prefix, sub)
        return int(remaining)
