"""A rate-limit storage for ``limits``/slowapi that counts in process and merges into Redis.

slowapi asks its storage on every request, synchronously, from the event loop: with plain
Redis that is a round trip on the request path (0.1 ms alone, up to 0.4 ms on a loaded host,
docs/benchmarks.md). This storage answers from memory and a background thread merges the
counts into Redis every ``SYNC_S`` seconds with limits' own Redis storage, so all processes
share one count per key. The price is a bounded overshoot: across processes, a limit can be
exceeded by what the others counted in the last ``SYNC_S`` seconds; within a process it is
exact. If Redis is unreachable, counting goes on per process and a warning is logged once.

Selected with the ``charla+redis://`` scheme (``shared.ratelimit`` picks it for ``redis://``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from limits.storage import RedisStorage, Storage

log = logging.getLogger(__name__)

PREFIX = "charla+"


@dataclass
class _Window:
    ends_at: float  # Unix time the fixed window ends
    expiry: int  # its length in seconds
    known: int = 0  # the shared total as of the last merge (this process's merged counts too)
    pending: int = 0  # counted here since the last merge


class SyncedRedisStorage(Storage):
    """Fixed-window counters in memory, merged into Redis in the background."""

    STORAGE_SCHEME = ["charla+redis", "charla+rediss", "charla+unix"]  # noqa: RUF012 - as limits declares it
    SYNC_S = 0.2

    def __init__(self, uri: str, wrap_exceptions: bool = False,
                 clock: Callable[[], float] = time.time, background: bool = True,
                 **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._remote = RedisStorage(uri.removeprefix(PREFIX), **options)
        self._clock = clock
        self._background = background  # off: the caller merges with sync() (tests)
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._healthy = True

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return redis.RedisError

    def _window(self, key: str, now: float) -> _Window | None:
        window = self._windows.get(key)
        if window is not None and now >= window.ends_at:
            del self._windows[key]
            return None
        return window

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        with self._lock:
            window = self._window(key, now)
            if window is None:
                window = self._windows[key] = _Window(ends_at=now + expiry, expiry=expiry)
            window.pending += amount
            total = window.known + window.pending
        if self._thread is None and self._background:
            self._start()
        return total

    def get(self, key: str) -> int:
        with self._lock:
            window = self._window(key, self._clock())
            return 0 if window is None else window.known + window.pending

    def get_expiry(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            window = self._window(key, now)
            return now if window is None else window.ends_at

    def check(self) -> bool:
        return bool(self._remote.check())

    def reset(self) -> int | None:
        with self._lock:
            self._windows.clear()
        return self._remote.reset()

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
        self._remote.clear(key)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._sync_forever, daemon=True,
                                                name="charla-limits-sync")
                self._thread.start()

    def close(self) -> None:
        """Merge what is pending and stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sync()

    def _sync_forever(self) -> None:
        while not self._stop.wait(self.SYNC_S):
            self.sync()

    def sync(self) -> None:
        """Merge local counts into Redis and learn the other processes' counts."""
        now = self._clock()
        with self._lock:
            work = []
            for key in list(self._windows):
                window = self._window(key, now)
                if window is not None:
                    work.append((key, window, window.pending))
                    window.pending = 0
        done = 0
        try:
            for key, window, delta in work:
                if delta:
                    total = self._remote.incr(key, window.expiry, delta)
                else:
                    total = self._remote.get(key)
                ends_at = self._remote.get_expiry(key)
                with self._lock:
                    window.known = total
                    if ends_at > now:
                        window.ends_at = ends_at  # the shared window, as Redis keeps it
                done += 1
        except redis.RedisError:
            with self._lock:  # keep counting here; merge the rest later
                for _key, window, delta in work[done:]:
                    window.pending += delta
            if self._healthy:
                log.warning("rate-limit storage unreachable; limits are per process for now")
            self._healthy = False
            return
        if not self._healthy:
            log.warning("rate-limit storage reachable again")
        self._healthy = True
