"""``while_connected``: an answer's work, stopped when its caller hangs up.

The ASGI side is a scripted ``receive``; the gateway and API tests show the same against real
servers (uvicorn, llama-server).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from shared.http import ClientLeft, while_connected


class Caller:
    """A request whose client is connected until :meth:`hang_up` (or whose server fails to
    say, with ``broken``)."""

    def __init__(self, broken: bool = False) -> None:
        self.gone = asyncio.Event()
        self.broken = broken
        self.request = Request({"type": "http", "method": "POST", "path": "/", "headers": []},
                               self.receive)

    async def receive(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("receive is not available")
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def hang_up(self) -> None:
        self.gone.set()


class Work:
    """Work that ends when told to, and notes whether it was cancelled."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.cancelled = False

    async def run(self) -> str:
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "answer"


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_works_result_comes_back_and_nothing_is_left_running() -> None:
    caller, work = Caller(), Work()
    before = asyncio.all_tasks()
    job = asyncio.create_task(while_connected(caller.request, work.run()))
    await _settle()
    work.finish.set()
    assert await job == "answer"
    await _settle()
    assert asyncio.all_tasks() == before  # the watcher is gone
    assert not work.cancelled


async def test_a_hang_up_cancels_the_work_and_says_the_client_left() -> None:
    caller, work = Caller(), Work()
    job = asyncio.create_task(while_connected(caller.request, work.run()))
    await _settle()
    caller.hang_up()
    with pytest.raises(ClientLeft):
        await job
    assert work.cancelled
    assert job.cancelling() == 0  # the task is not left marked as cancelled


async def test_a_hang_up_as_the_work_ends_still_says_the_client_left() -> None:
    caller, work = Caller(), Work()
    job = asyncio.create_task(while_connected(caller.request, work.run()))
    await _settle()
    caller.hang_up()
    work.finish.set()  # done, but the watcher runs first in this turn of the loop
    with pytest.raises(ClientLeft):
        await job


async def test_a_cancellation_from_elsewhere_is_not_taken_for_a_hang_up() -> None:
    caller, work = Caller(), Work()
    job = asyncio.create_task(while_connected(caller.request, work.run()))
    await _settle()
    job.cancel()  # a server shutting down, say
    with pytest.raises(asyncio.CancelledError):
        await job
    assert work.cancelled


async def test_a_hang_up_and_a_cancellation_together_stay_a_cancellation() -> None:
    caller, work = Caller(), Work()
    job = asyncio.create_task(while_connected(caller.request, work.run()))
    await _settle()
    caller.hang_up()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


async def test_a_server_that_cannot_say_lets_the_work_run_to_its_end() -> None:
    caller, work = Caller(broken=True), Work()
    job = asyncio.create_task(while_connected(caller.request, work.run()))
    await _settle()
    work.finish.set()
    assert await job == "answer"
