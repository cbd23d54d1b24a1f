"""The supervisor of ``charla up``: a dead child comes back as it was, a child that keeps
crashing is given up on, and a stop during a backoff or a restart stops everything.

The children are small Python processes, the same real processes the stack runs, minus the
stack; the whole stack is killed child by child in tests/charla/test_up_heals.py.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from charla.stack import WORKER_APP_NAME, Stack, worker_connected
from charla.supervise import Child, Crashes, RestartPolicy, StartError, Supervisor
from shared.settings import Settings

FAST = RestartPolicy(quick_s=5.0, give_up_after=3, first_delay_s=0.05, max_delay_s=0.2)

# Appends "pid PORT DATABASE_URL" to the file named in argv, then waits to be stopped.
# SIGINT as a terminal sends it: a shell that starts a job in the background without job
# control (a CI script's "&") has its children ignore SIGINT, and they would inherit that.
RECORD_AND_WAIT = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "with open(sys.argv[1], 'a') as f:\n"
    "    f.write(f\"{os.getpid()} {os.environ['PORT']} {os.environ['DATABASE_URL']}\\n\")\n"
    "signal.pause()\n"
)


def until(condition: Callable[[], bool], step: Callable[[], object] = lambda: None,
          timeout: float = 30.0) -> None:
    """Run ``step`` until ``condition`` holds; fail after ``timeout`` (a hang, not a pace)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        step()
        time.sleep(0.01)


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def supervisor() -> Iterator[tuple[Supervisor, list[str]]]:
    said: list[str] = []
    sup = Supervisor(threading.Event(), said.append, policy=FAST)
    yield sup, said
    sup.stopping.set()
    sup.stop()


def recorder(tmp_path: Path, ready: Callable[[Child], bool] | None = None) -> tuple[Child, Path]:
    out = tmp_path / "started"
    env = {"PATH": os.environ.get("PATH", ""), "PORT": "8123", "DATABASE_URL": "postgresql:///x"}
    return Child("worker", [sys.executable, "-c", RECORD_AND_WAIT, str(out)], env,
                 ready=ready), out


def test_the_backoff_doubles_and_a_child_that_ran_long_enough_starts_counting_afresh() -> None:
    crashes = Crashes(RestartPolicy())  # the defaults charla up runs with
    assert [crashes.record(2.0) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, None]
    crashes = Crashes(RestartPolicy())
    assert [crashes.record(2.0) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert crashes.record(3600.0) == 1.0  # it had run an hour: the count starts again
    assert crashes.record(29.0) == 2.0
    capped = Crashes(RestartPolicy(give_up_after=10, max_delay_s=5.0))
    assert [capped.record(0.0) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_killed_child_is_restarted_with_its_environment_and_back_once_ready(
    supervisor: tuple[Supervisor, list[str]], tmp_path: Path
) -> None:
    sup, said = supervisor
    serving = threading.Event()
    child, out = recorder(tmp_path, ready=lambda c: serving.is_set())
    sup.start(child)
    until(lambda: len(lines(out)) == 1)
    first = child.proc
    assert first is not None
    first.send_signal(signal.SIGKILL)
    # Restarted after its backoff, but not back while its probe says it does not serve yet.
    until(lambda: len(lines(out)) == 2, step=sup.tick)
    for _ in range(5):
        assert sup.tick() is None
    assert child.state == "starting" and not any("is back" in s for s in said)
    serving.set()
    until(lambda: child.state == "running", step=sup.tick)
    (pid1, *env1), (pid2, *env2) = lines(out)
    assert child.proc is not None and int(pid2) == child.proc.pid != int(pid1) == first.pid
    assert env2 == env1 == ["8123", "postgresql:///x"]
    assert said[0] == "the worker was killed by SIGKILL (Killed); restarting it in 0.05 s"
    assert said[1] == "restarting the worker"
    assert said[2].startswith("the worker is back (ready in ")


def test_a_child_that_keeps_crashing_at_once_is_given_up_on_saying_why(
    supervisor: tuple[Supervisor, list[str]]
) -> None:
    sup, said = supervisor
    sup.start(Child("model server", [sys.executable, "-c", "raise SystemExit(3)"],
                    {"PATH": os.environ.get("PATH", "")}))
    reason = sup.run(every_s=0.01)
    assert reason is not None and reason.startswith("the model server exited with code 3")
    assert reason.endswith("; it failed 3 times in a row, each within 5 s of its start:"
                           " giving up")
    assert [s.rpartition("; ")[2] for s in said if "restarting it in" in s] == [
        "restarting it in 0.05 s", "restarting it in 0.1 s"]


def test_a_restart_that_never_becomes_ready_is_killed_and_counted_as_a_crash(
    supervisor: tuple[Supervisor, list[str]], tmp_path: Path
) -> None:
    sup, said = supervisor
    child, out = recorder(tmp_path, ready=lambda c: False)
    child.start_timeout_s = 0.2
    sup.start(child)  # no wait: its first start counts as done
    until(lambda: len(lines(out)) == 1)
    assert child.proc is not None
    child.proc.kill()
    until(lambda: any("did not become ready" in s for s in said), step=sup.tick)
    assert "the worker did not become ready within 0.2 s of its restart; restarting it" \
        in said[-1]
    assert not running(int(lines(out)[1][0]))


def running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("when", ["backoff", "restart"])
def test_a_stop_during_a_backoff_or_a_restart_stops_everything(
    when: str, tmp_path: Path
) -> None:
    said: list[str] = []
    slow = RestartPolicy(first_delay_s=3600.0 if when == "backoff" else 0.01)
    sup = Supervisor(threading.Event(), said.append, policy=slow)
    child, out = recorder(tmp_path, ready=lambda c: False)  # a restart never ready
    sup.start(child)
    until(lambda: len(lines(out)) == 1)
    assert child.proc is not None
    child.proc.kill()
    supervising = threading.Thread(target=sup.run, kwargs={"every_s": 0.01})
    supervising.start()
    if when == "backoff":
        until(lambda: child.state == "waiting")
    else:
        until(lambda: len(lines(out)) == 2)
    sup.stopping.set()  # what Ctrl-C or SIGTERM does
    supervising.join(timeout=10)
    assert not supervising.is_alive()
    sup.stop()
    assert child.proc.poll() is not None
    assert not any(running(int(row[0])) for row in lines(out))
    assert len(lines(out)) == (1 if when == "backoff" else 2)


def test_a_child_that_ends_as_the_stack_is_told_to_stop_is_not_restarted(
    supervisor: tuple[Supervisor, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C reaches every process of the group at once: a child may be gone before charla up
    has run its own handler. That is a stop, not a crash."""
    # The grace is long here, so that a slow machine cannot run it out before the timer fires:
    # what is tested is that the stop is waited for, not how fast the handler comes.
    monkeypatch.setattr("charla.supervise.SIGNAL_GRACE_S", 60.0)
    sup, said = supervisor
    child, out = recorder(tmp_path)
    sup.start(child)
    until(lambda: len(lines(out)) == 1)
    assert child.proc is not None
    child.proc.send_signal(signal.SIGINT)
    child.proc.wait()
    threading.Timer(0.05, sup.stopping.set).start()  # our own handler, a moment later
    assert sup.tick() is None
    assert said == [] and child.state == "running" and len(lines(out)) == 1


def test_a_child_that_fails_its_first_start_aborts_the_start(tmp_path: Path) -> None:
    stack = Stack(environ={"PATH": os.environ.get("PATH", "")}, settings=Settings.from_env({}))
    with pytest.raises(StartError, match=r"worker exited during start \(code 1\)"):
        stack.start("worker", "charla_has_no_such_module", lambda c: False, 30, "starting")
    stack.stop()


WORKER_LIKE = (
    "import os, signal, sys, psycopg\n"
    "conn = psycopg.connect(os.environ['DATABASE_URL']) if sys.argv[1] == 'connect' else None\n"
    "print('up', flush=True)\n"
    "signal.pause()\n"
)


@pytest.mark.parametrize("connects", [True, False])
def test_the_worker_is_ready_once_it_has_connected_to_the_database_since_its_start(
    pg_url: str, connects: bool
) -> None:
    """The worker has no port; a session of its own in the database says it runs. A session
    left by the worker it replaces (killed, its backend not yet gone) does not count."""
    with psycopg.connect(pg_url, application_name=WORKER_APP_NAME):
        env = {**os.environ, "DATABASE_URL": pg_url, "PGAPPNAME": WORKER_APP_NAME}
        said: list[str] = []
        sup = Supervisor(threading.Event(), said.append)
        child = sup.start(Child("worker", [sys.executable, "-c", WORKER_LIKE,
                                           "connect" if connects else "idle"], env))
        try:
            assert child.proc is not None and child.proc.stdout is None
            if connects:
                until(lambda: worker_connected(child))
            else:
                # It never connects: not ready, though an older worker's session is there.
                until(lambda: child.alive() and time.monotonic() - child.started_at > 1.0,
                      step=lambda: assert_not_ready(child))
        finally:
            sup.stopping.set()
            sup.stop()


def assert_not_ready(child: Child) -> None:
    assert not worker_connected(child)
