"""Rate limits keyed on the verified token's subject.

The API uses slowapi as designed (a decorator per route). The gateway, which every model
request passes, counts requests and tokens with :class:`Quota`, on the same ``limits``
storage and fixed windows but off the request path (measured in docs/benchmarks.md).

``memory://`` holds for one process only (fine for ``charla up``); production and the tests
name Redis. If Redis goes away, limits fall back to in-process counting and log it, so a
cache outage degrades limits instead of refusing every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import ConfigError
from shared.http import json_error, subject_of

log = logging.getLogger(__name__)


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


class Quota:
    """An allowance per subject and fixed window: requests (``120/minute``) or tokens.

    Counted off the request path, because the gateway checks two of these on every model
    request and a Redis round trip there costs more than the rest of its work together
    (docs/benchmarks.md). Charges collect in memory and :meth:`flush` writes them to the
    storage (call it every fraction of a second). What the storage last said is left is
    trusted for :attr:`FRESH_S`, and only for :attr:`SHARE` of it, so that several gateway
    processes sharing one storage overshoot little; when that share is spent, or is too small
    to share, every check asks the storage after writing the subject's own pending charges,
    which makes a refusal and its ``Retry-After`` exact.

    If the storage fails, counting goes on in this process (a warning is logged) and the
    storage is tried again after :attr:`RETRY_STORAGE_S`.
    """

    FRESH_S = 1.0
    SHARE = 4
    RETRY_STORAGE_S = 5.0

    def __init__(self, storage_uri: str, rate: str, key_prefix: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            self.item = parse(rate)
        except ValueError:
            raise ConfigError(f"{rate!r} is not a rate like '120/minute' or '200000/day'"
                              ) from None
        self._storage = FixedWindowRateLimiter(
            storage_from_string(storage_uri, **_storage_options(storage_uri)))
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._prefix = key_prefix
        self._clock = clock
        self._storage_down_until = 0.0
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._known: dict[str, tuple[float, int]] = {}  # sub -> (trusted until, usable left)

    def retry_after(self, sub: str) -> int | None:
        """None while ``sub`` has some allowance left, else seconds until the window resets."""
        now = self._clock()
        known = self._known.get(sub)
        if known is not None and now < known[0] and known[1] > 0:
            return None
        self._write(sub)
        reset_at, left = self._call(FixedWindowRateLimiter.get_window_stats, sub)
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[sub] = (now + self.FRESH_S, int(left) // self.SHARE)
        return None if left > 0 else _seconds_until(reset_at)

    def take(self, sub: str, cost: int = 1) -> int | None:
        """Check and charge at once (a request): None if allowed, else the Retry-After."""
        retry = self.retry_after(sub)
        if retry is None:
            self.charge(sub, cost)
        return retry

    def charge(self, sub: str, cost: int) -> None:
        """Count ``cost`` against ``sub`` (written to the storage by :meth:`flush`)."""
        if cost <= 0:
            return
        with self._lock:
            self._pending[sub] = self._pending.get(sub, 0) + cost
            known = self._known.get(sub)
            if known is not None:
                self._known[sub] = (known[0], known[1] - cost)

    @property
    def pending(self) -> bool:
        """Whether charges wait for :meth:`flush`."""
        return bool(self._pending)

    def flush(self) -> None:
        """Write every pending charge to the storage."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for sub, cost in pending.items():
            self._call(FixedWindowRateLimiter.hit, sub, cost=cost)

    def remaining(self, sub: str) -> int:
        """What ``sub`` has left in this window, as the storage counts it."""
        self._write(sub)
        _reset, left = self._call(FixedWindowRateLimiter.get_window_stats, sub)
        return int(left)

    def _write(self, sub: str) -> None:
        with self._lock:
            cost = self._pending.pop(sub, 0)
        if cost:
            self._call(FixedWindowRateLimiter.hit, sub, cost=cost)

    def _call(self, method: Callable[..., Any], sub: str, **cost: int) -> Any:
        """``method`` on the storage, or on this process's counters while it is down."""
        args = (self.item, self._prefix, sub)
        if self._storage_down_until:
            if self._clock() < self._storage_down_until:
                return method(self._memory, *args, **cost)
            self._storage_down_until = 0.0
            log.info("rate limit storage: trying it again")
        try:
            return method(self._storage, *args, **cost)
        except Exception:  # noqa: BLE001 - storage down: count here rather than refuse all
            log.warning("rate limit storage unreachable; counting in this process for %.0f s",
                        self.RETRY_STORAGE_S)
            self._storage_down_until = self._clock() + self.RETRY_STORAGE_S
            return method(self._memory, *args, **cost)
