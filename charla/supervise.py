"""Keep the children of ``charla up`` running: a child that dies is started again, as it was.

A child that exits while the stack is not stopping is restarted after a backoff (1, 2, 4, 8 s
by default) with the environment it was first started with (its port, ``DATABASE_URL``, the
llama-server binary), and reported back only once its readiness probe passes. The stack gives
up only on a child that keeps crashing soon after it starts (:class:`RestartPolicy`): a child
that ran long enough before it died starts counting afresh, since one crash a day is a bug
to log, not a reason to take the bots down.

Everything is one non-blocking pass (:meth:`Supervisor.tick`) that ``charla up`` repeats, so a
Ctrl-C during a backoff or a restart is seen at the next pass and stops what is running.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from model_server.engines.llama_server import exit_reason
from shared.errors import CharlaError

Say = Callable[[str], None]
Probe = Callable[["Child"], bool]  # quick (about a second at most): is the child serving?
STOP_GRACE_S = 15.0  # how long stop() waits for the children to end on SIGTERM
# Ctrl-C or a SIGTERM to the process group reaches the children and charla up at once: a
# child that ends meanwhile was told to stop, and is not restarted if the signal follows soon.
SIGNAL_GRACE_S = 0.2


class StartError(CharlaError):
    """The stack could not start; the message says which part and why."""


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead child, and when to give up on it."""

    quick_s: float = 30.0  # a child that dies sooner than this after its start crashed quickly
    give_up_after: int = 5  # quick crashes in a row that end the stack
    first_delay_s: float = 1.0  # the backoff before the first restart, doubling after each
    max_delay_s: float = 30.0

    def delay(self, crashes: int) -> float:
        """The wait before restarting a child that has crashed ``crashes`` times in a row."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (crashes - 1)))


@dataclass
class Crashes:
    """The quick crashes in a row of one child."""

    policy: RestartPolicy
    count: int = 0

    def record(self, ran_s: float) -> float | None:
        """A crash after ``ran_s`` seconds of life: the wait before the restart, or None to
        give up. A child that had run for ``quick_s`` or longer starts counting afresh."""
        if ran_s >= self.policy.quick_s:
            self.count = 0
        self.count += 1
        if self.count >= self.policy.give_up_after:
            return None
        return self.policy.delay(self.count)


def _ignore_hangup() -> None:  # pragma: no cover - runs in the child
    # A closed terminal would kill the children on the spot; charla up stops them in order.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@dataclass
class Child:
    """One supervised process: ``argv`` under ``env``, serving once ``ready`` says so."""

    name: str
    argv: list[str]
    env: dict[str, str]  # a copy taken at the first start: a restart gets the same one
    ready: Probe | None = None  # None: serving as soon as it runs
    start_timeout_s: float = 60.0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    state: Literal["starting", "running", "waiting"] = "starting"
    restart_at: float = 0.0
    crashes: Crashes = field(default_factory=lambda: Crashes(RestartPolicy()))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Starts children, restarts the ones that die, and stops them all."""

    def __init__(self, stopping: threading.Event, say: Say, *,
                 policy: RestartPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stopping = stopping
        self.children: list[Child] = []
        self._say = say
        self._policy = policy or RestartPolicy()
        self._clock = clock

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=child.env, preexec_fn=_ignore_hangup)
        child.started_at = self._clock()
        child.state = "starting"

    def start(self, child: Child, wait: Callable[[Child], None] | None = None) -> Child:
        """The first start: spawn ``child`` and let ``wait`` block until it serves (raising
        :class:`StartError` if it does not); from then on it is restarted when it dies."""
        child.crashes = Crashes(self._policy)
        child.env = dict(child.env)
        self.children.append(child)
        self._spawn(child)
        if wait is not None:
            wait(child)
        child.state = "running"
        return child

    def run(self, every_s: float = 0.2) -> str | None:
        """Supervise until the stack is stopping (None) or a child is given up on (why)."""
        while not self.stopping.wait(every_s):
            reason = self.tick()
            if reason is not None:
                return reason
        return None

    def tick(self) -> str | None:
        """One pass over the children; the reason to give up, if one must be given up on."""
        for child in self.children:
            if self.stopping.is_set():
                return None  # a child ending now was told to stop: nothing to restart
            reason = self._check(child)
            if reason is not None:
                return reason
        return None

    def _check(self, child: Child) -> str | None:
        now = self._clock()
        proc = child.proc
        if child.state == "waiting":
            if now >= child.restart_at:
                self._say(f"restarting the {child.name}")
                self._spawn(child)
            return None
        assert proc is not None
        code = proc.poll()
        if code is not None and self.stopping.wait(SIGNAL_GRACE_S):
            return None
        if child.state == "starting":
            if code is not None:
                return self._crashed(child, f"{exit_reason(code)} while restarting", 0.0)
            if child.ready is None or child.ready(child):
                child.state = "running"
                self._say(f"the {child.name} is back (ready in {now - child.started_at:.1f} s)")
            elif now - child.started_at > child.start_timeout_s:
                proc.kill()
                proc.wait()
                return self._crashed(child, "did not become ready within "
                                     f"{child.start_timeout_s:g} s of its restart", 0.0)
            return None
        if code is None:
            return None
        return self._crashed(child, exit_reason(code), now - child.started_at)

    def _crashed(self, child: Child, reason: str, ran_s: float) -> str | None:
        delay = child.crashes.record(ran_s)
        if delay is None:
            quick = child.crashes.policy.quick_s
            return (f"the {child.name} {reason}; it failed {child.crashes.count} times in a "
                    f"row, each within {quick:.0f} s of its start: giving up")
        self._say(f"the {child.name} {reason}; restarting it in {delay:g} s")
        child.state = "waiting"
        child.restart_at = self._clock() + delay
        return None

    def stop(self) -> None:
        """SIGTERM to every child still running, then wait; kill those that do not end."""
        for child in self.children:
            if child.alive():
                assert child.proc is not None
                child.proc.send_signal(signal.SIGTERM)
        deadline = self._clock() + STOP_GRACE_S
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                self._say(f"the {child.name} did not stop in time; killing it")
                child.proc.kill()
                child.proc.wait()
