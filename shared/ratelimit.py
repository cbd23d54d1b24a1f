"""Rate limits keyed on the verified token's subject, on the ``limits`` library's storage.

Two limits stand on it, both in fixed windows:

- The API's one allowance per client across its routes is slowapi's (functions/limit.py); it
  takes :func:`storage_options` from here.
- :class:`Quota`, the gateway's request limit and token budget per person, which every model
  request passes: counted in memory and written off the request path (docs/benchmarks.md).

Forgetting someone (shared/privacy.py) deletes their counters while a gateway may still hold
charges for them in memory. So that those are not written back after the delete, privacy
counts every forget in :data:`FORGETS_KEY` before it deletes, and a :class:`Quota` writes a
charge only if no forget has been counted since the work it pays for began: Redis runs that
check and the write as one script, so a write is either before the delete (and deleted) or
after the count (and dropped), in whichever process it happens.

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
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeGuard, TypeVar

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisClusterStorage, RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from shared.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

# How many forgets the storage has counted, under the limits library's own key prefix. It
# names nobody: a charge is compared with the count as it stood when its work began.
FORGETS_KEY = "LIMITS:charla-forgets"

# A Quota's charge, written unless a forget was counted since its work began.
# KEYS: the counter, FORGETS_KEY. ARGV: the window (s), the cost, the forgets counted then.
# The write itself is the limits library's fixed window (incr_expire.lua).
_CHARGE_UNLESS_FORGOTTEN = b"""
local forgets = tonumber(redis.call('get', KEYS[2]) or '0')
if forgets > tonumber(ARGV[3]) then
  return {0, forgets}
end
local cost = tonumber(ARGV[2])
if cost < 0 then
  -- a refund: never below nothing, and never into a window that has ended
  local count = tonumber(redis.call('get', KEYS[1]) or '0')
  cost = math.max(cost, -count)
  if cost == 0 then
    return {1, forgets}
  end
end
local count = redis.call('incrby', KEYS[1], cost)
if count == cost then
  redis.call('expire', KEYS[1], ARGV[1])
end
return {1, forgets}
"""

# A Quota's check and charge as one step, for the end of an allowance: ``cost`` is charged
# (unless a forget was counted since its work began) if anything is left, even if ``cost`` is
# more; else nothing. KEYS: the counter, FORGETS_KEY. ARGV: the window (s), the cost, the
# forgets counted when the work began ('' for work that begins now), the allowance. Returns:
# taken (1/0), forgets, the count, its TTL (ms).
_TAKE_UNLESS_FORGOTTEN = b"""
local forgets = tonumber(redis.call('get', KEYS[2]) or '0')
local count = tonumber(redis.call('get', KEYS[1]) or '0')
if count >= tonumber(ARGV[4]) then
  return {0, forgets, count, redis.call('pttl', KEYS[1])}
end
if ARGV[3] == '' or forgets <= tonumber(ARGV[3]) then
  count = redis.call('incrby', KEYS[1], ARGV[2])
  if count == tonumber(ARGV[2]) then
    redis.call('expire', KEYS[1], ARGV[1])
  end
end
return {1, forgets, count, redis.call('pttl', KEYS[1])}
"""

RETRY_STORAGE_S = 5.0


def parse_rate(rate: str) -> RateLimitItem:
    """``120/minute`` as a ``limits`` item; a :class:`ConfigError` naming the form if not."""
    try:
        return parse(rate)
    except ValueError:
        raise ConfigError(f"{rate!r} is not a rate like '120/minute' or '200000/day'"
                          ) from None


def storage_options(uri: str) -> dict[str, Any]:
    """What the ``limits`` storage at ``uri`` is opened with, by :class:`Quota` and by the
    API's slowapi limiter: fail fast when Redis is down instead of hanging a request on it."""
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    return {}


def _seconds_until(reset_at: float) -> int:
    return max(1, math.ceil(float(reset_at) - time.time()))


def _one_server(storage: object) -> TypeGuard[RedisStorage]:
    """Redis on one server (or Sentinel's): a script may touch a counter and FORGETS_KEY."""
    return isinstance(storage, RedisStorage) and not isinstance(storage, RedisClusterStorage)


class _Storages:
    """The configured storage, or this process's counters while it is unreachable: a failed
    call is answered from memory (a warning is logged), and the storage is tried again after
    ``retry_s``."""

    def __init__(self, uri: str, clock: Callable[[], float], retry_s: float) -> None:
        self.shared = FixedWindowRateLimiter(storage_from_string(uri, **storage_options(uri)))
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self._clock = clock
        self._retry_s = retry_s
        self._down_until = 0.0

    @property
    def up(self) -> bool:
        """Whether the last call reached the storage."""
        return not self._down_until

    def call(self, method: Callable[[FixedWindowRateLimiter], T]) -> T:
        if self._down_until:
            if self._clock() < self._down_until:
                return method(self.memory)
            self._down_until = 0.0
            log.info("rate limit storage: trying it again")
        try:
            return method(self.shared)
        except Exception:  # noqa: BLE001 - storage down: count here rather than refuse all
            log.warning("rate limit storage unreachable; counting in this process for %.0f s",
                        self._retry_s)
            self._down_until = self._clock() + self._retry_s
            return method(self.memory)


@dataclass(frozen=True)
class Mark:
    """How many forgets a :class:`Quota` knew of when some work began (None: it could not
    ask the storage yet, which counts as before any forget)."""

    forgets: int | None


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

    A charge is written only if no forget was counted since its work began (the module's
    docstring). A process hears of a forget at its next write, so what it charged anyone
    until then is dropped too: about one flush per forget, and an answer running across it,
    a small undercount in favour of leaving nothing behind.

    If the storage fails, counting goes on in this process (a warning is logged) and the
    storage is tried again after :attr:`RETRY_STORAGE_S`.
    """

    FRESH_S = 1.0
    SHARE = 4
    RETRY_STORAGE_S = RETRY_STORAGE_S

    def __init__(self, storage_uri: str, rate: str, key_prefix: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.item = parse_rate(rate)
        self._storages = _Storages(storage_uri, clock, self.RETRY_STORAGE_S)
        self._prefix = key_prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, int | None]] = {}  # sub -> (cost, forgets then)
        self._known: dict[str, tuple[float, int]] = {}  # sub -> (trusted until, usable left)
        self._forgets = self._read_forgets()

    def mark(self) -> Mark:
        """Now, for a charge made later for work that begins now (:meth:`charge`)."""
        return Mark(self._forgets)

    def retry_after(self, sub: str) -> int | None:
        """None while ``sub`` has some allowance left, else seconds until the window resets."""
        now = self._clock()
        known = self._known.get(sub)
        if known is not None and now < known[0] and known[1] > 0:
            return None
        self._write(sub)
        reset_at, left = self._stats(sub)
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[sub] = (now + self.FRESH_S, int(left) // self.SHARE)
        return None if left > 0 else _seconds_until(reset_at)

    def take(self, sub: str, cost: int = 1, *, began: Mark | None = None) -> int | None:
        """Check and charge ``cost`` at once (a request; a hold on tokens): None if allowed,
        else the Retry-After.

        While this process's share of what is left covers ``cost``, it is charged in memory.
        Past that, the check and the charge are one step in the storage, so that requests
        at the end of an allowance, in this process or another, cannot all see its last part
        left and all take it: the one that takes the last part may overshoot the allowance by
        at most its own ``cost``; the next is refused.
        """
        now = self._clock()
        known = self._known.get(sub)
        if known is not None and now < known[0] and known[1] >= cost:
            self.charge(sub, cost, began=began)
            return None
        self._write(sub)
        since = "" if began is None else began.forgets or 0
        taken, left, reset_at = self._storages.call(
            partial(self._take, sub=sub, cost=cost, since=since))
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[sub] = (now + self.FRESH_S, left // self.SHARE)
        return None if taken else _seconds_until(reset_at)

    def charge(self, sub: str, cost: int, *, began: Mark | None = None) -> None:
        """Count ``cost`` against ``sub`` (written by :meth:`flush`), for work that began at
        ``began`` (default: now). A negative ``cost`` gives back part of an earlier charge (a
        hold that was more than the work cost); it never takes the count below nothing, so
        a hold whose window has ended gives back no more than the next window has counted."""
        if cost == 0:
            return
        since = (began or self.mark()).forgets
        with self._lock:
            total, pending = cost, self._pending.get(sub)
            if pending is not None:  # the oldest work decides: None is older than any
                total += pending[0]
                since = None if since is None or pending[1] is None else min(since, pending[1])
            self._pending[sub] = (total, since)
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
        for sub, (cost, since) in pending.items():
            self._storages.call(partial(self._hit, sub=sub, cost=cost, since=since))

    def remaining(self, sub: str) -> int:
        """What ``sub`` has left in this window, as the storage counts it."""
        self._write(sub)
        _reset, left = self._stats(sub)
        return int(left)

    def _stats(self, sub: str) -> tuple[float, int]:
        reset_at, left = self._storages.call(
            lambda limiter: limiter.get_window_stats(self.item, self._prefix, sub))
        if self._forgets is None and self._storages.up:  # unknown at start: storage was down
            self._forgets = self._read_forgets()
        return float(reset_at), int(left)

    def _write(self, sub: str) -> None:
        with self._lock:
            cost, since = self._pending.pop(sub, (0, None))
        if cost:
            self._storages.call(partial(self._hit, sub=sub, cost=cost, since=since))

    def _hit(self, limiter: FixedWindowRateLimiter, sub: str, cost: int,
             since: int | None) -> None:
        storage = limiter.storage
        if not _one_server(storage):  # memory: this process's own; nothing outlives a forget
            if cost < 0:  # a refund, as the script below gives one
                cost = max(cost, -int(storage.get(self.item.key_for(self._prefix, sub))))
            if cost:
                limiter.hit(self.item, self._prefix, sub, cost=cost)
            return
        charge = storage.get_connection().register_script(_CHARGE_UNLESS_FORGOTTEN)
        key = storage.prefixed_key(self.item.key_for(self._prefix, sub))
        written, forgets = charge(keys=[key, FORGETS_KEY],
                                  args=[self.item.get_expiry(), cost, since or 0])
        with self._lock:  # learn of forgets, so that later charges are compared with them
            self._forgets = max(self._forgets or 0, int(forgets))
        if not written:
            log.debug("a charge begun before a forget was not written")

    def _take(self, limiter: FixedWindowRateLimiter, sub: str, cost: int,
              since: int | str) -> tuple[bool, int, float]:
        """Whether ``cost`` was taken, what is left after it, and when the window resets."""
        storage = limiter.storage
        if not _one_server(storage):  # this process's own, or a cluster: check, then charge
            reset_at, left = limiter.get_window_stats(self.item, self._prefix, sub)
            if left <= 0:
                return False, 0, float(reset_at)
            limiter.hit(self.item, self._prefix, sub, cost=cost)
            return True, int(left) - cost, float(reset_at)
        take = storage.get_connection().register_script(_TAKE_UNLESS_FORGOTTEN)
        key = storage.prefixed_key(self.item.key_for(self._prefix, sub))
        taken, forgets, count, ttl = take(keys=[key, FORGETS_KEY], args=[
            self.item.get_expiry(), cost, since, self.item.amount])
        with self._lock:
            self._forgets = max(self._forgets or 0, int(forgets))
        ttl_s = int(ttl) / 1000 if int(ttl) > 0 else self.item.get_expiry()
        return bool(taken), self.item.amount - int(count), time.time() + ttl_s

    def _read_forgets(self) -> int | None:
        storage = self._storages.shared.storage
        if not _one_server(storage):
            return None
        try:
            return int(storage.get_connection().get(FORGETS_KEY) or 0)
        except Exception:  # noqa: BLE001 - down now: learnt at the first write that works
            return None
