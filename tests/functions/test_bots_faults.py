"""Every accepted message gets exactly one reply: failed posts, lost answers, a model outage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from functions.worker.answer import APOLOGY, TOO_LONG
from tests.conftest import (
    Gateway,
    ServerThread,
    fresh_database,
    gateway_env,
    make_settings,
    start_gateway,
)
from tests.fakes.slack_api import FailureMode
from tests.functions.bots import Bots, Switch, eventually, start_bots
from tests.functions.test_bots_slack import answered, mention, posts_in, shown


@pytest.fixture(scope="module")
def outage(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
           redis_url: str) -> Iterator[tuple[Bots, Switch]]:
    """Bots whose way to the model server can be cut; four attempts, quick backoff."""
    target = urlsplit(gateway.url)
    switch = Switch(target.hostname or "127.0.0.1", target.port or 80)
    bots = start_bots(service_keys, switch.url, fresh_database(pg_url), redis_url,
                      CHARLA_JOB_MAX_ATTEMPTS="4", CHARLA_JOB_BACKOFF="0.3",
                      CHARLA_BOT_MAX_TOKENS="300")  # long enough to be cut mid-answer
    yield bots, switch
    bots.stop()


async def test_a_post_the_platform_refused_is_posted_again_once(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    bots.slack.fail_next(1, mode="server_error")
    body = mention("Say yes.")
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert answer.strip()
    ev = body["event"]
    assert len(posts_in(bots, ev["channel"], ev["ts"])) == 2  # the refused one and the real one
    [(state, attempts, _)] = bots.job_state("slack", body["event_id"])
    # 2 when the refused call was a stream's start. A post answered 500 may have been made:
    # the next run looks for it, finds nothing, and posts once the post could no longer
    # land (SlackReply.settle_s), one attempt later.
    assert state == "done" and attempts in (2, 3)


async def test_a_post_whose_answer_was_lost_is_not_posted_twice(
    no_streams: Bots, http: httpx.AsyncClient
) -> None:
    # Slack posts, but answers after the client gave up (1.5 s): the post may have happened.
    # Posted, not streamed, however long the model takes: only a post carries the metadata
    # that a later run finds it by.
    bots = no_streams
    bots.slack.fail_next(1, mode="slow", delay_s=2.5, method="chat.postMessage")
    body = mention("Say no.")
    await bots.slack_event(http, body)
    await eventually(lambda: [s for s, *_ in bots.job_state("slack", body["event_id"])]
                     == ["done"], timeout=60)
    # Every call of the job came before it ended, and the slow post landed before a later
    # run could find it: what Slack shows now is final.
    ev = body["event"]
    assert len(shown(bots, ev["channel"], ev["ts"])) == 1
    assert len(posts(bots, ev["channel"], ev["ts"])) == 1
    # It was this job's post that was slow: the job ran again and looked for it.
    [(_, attempts, _)] = bots.job_state("slack", body["event_id"])
    assert attempts >= 2
    assert [c for c in bots.slack.calls_to("conversations.replies")
            if c.json["channel"] == ev["channel"]]


def posts(bots: Bots, channel: str, thread: str) -> list[dict[str, object]]:
    """The thread's ``chat.postMessage`` calls (a refused stream start is not one)."""
    return [p for p in posts_in(bots, channel, thread) if p["method"] == "chat.postMessage"]


@pytest.fixture
def no_streams(bots: Bots) -> Iterator[Bots]:
    """Bots whose Slack refuses to stream: answers are posted and edited."""
    bots.slack.refuse_streams = "not_allowed"
    yield bots
    bots.slack.refuse_streams = None
    bots.slack.disarm()


@pytest.mark.parametrize(("mode", "error"), [("acted_server_error", ""),
                                             ("acted_error", "internal_error")])
async def test_a_post_slack_made_but_failed_is_found_and_not_posted_twice(
    no_streams: Bots, http: httpx.AsyncClient, mode: FailureMode, error: str
) -> None:
    # Slack posts, then fails: "some aspect of the operation" succeeded. The next run finds
    # the post by its metadata and edits it (before, it was posted again: two messages).
    bots = no_streams
    bots.slack.fail_next(1, mode=mode, error=error, method="chat.postMessage")
    body = mention("Say yes.")
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert answer.strip()
    ev = body["event"]
    assert shown(bots, ev["channel"], ev["ts"]) == [answer]
    assert len(posts(bots, ev["channel"], ev["ts"])) == 1
    assert [c for c in bots.slack.calls_to("conversations.replies")
            if c.json["channel"] == ev["channel"]]
    [(state, attempts, _)] = bots.job_state("slack", body["event_id"])
    assert (state, attempts) == ("done", 2)


async def test_a_lost_post_slack_never_made_is_posted_once(
    no_streams: Bots, http: httpx.AsyncClient
) -> None:
    # No answer came, and Slack had posted nothing: once the post could no longer land, a
    # later run finds nothing and posts it (before, it was never posted: no answer at all).
    bots = no_streams
    bots.slack.fail_next(1, mode="lost", delay_s=2.5, method="chat.postMessage")
    body = mention("Say no.")
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert answer.strip()
    ev = body["event"]
    assert shown(bots, ev["channel"], ev["ts"]) == [answer]
    assert len(posts(bots, ev["channel"], ev["ts"])) == 2  # the lost one and the real one
    [(state, attempts, _)] = bots.job_state("slack", body["event_id"])
    assert state == "done" and attempts >= 2


async def test_a_lost_stream_start_is_not_started_again(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    # chat.startStream takes no metadata: a start whose answer was lost cannot be looked
    # for, and is left rather than risk a second copy (here Slack had started nothing).
    bots.slack.fail_next(1, mode="lost", delay_s=2.5, method="chat.startStream")
    body = mention("Write a short poem about the sea, in four stanzas.")  # long: it streams
    try:
        await bots.slack_event(http, body)
        assert await answered(bots, body) == []
    finally:
        bots.slack.disarm()
    ev = body["event"]
    assert [p["method"] for p in posts_in(bots, ev["channel"], ev["ts"])] == [
        "chat.startStream"]
    [(state, attempts, _)] = bots.job_state("slack", body["event_id"])
    assert (state, attempts) == ("done", 2)


async def test_a_model_outage_is_waited_out_and_answered_once(
    outage: tuple[Bots, Switch], http: httpx.AsyncClient
) -> None:
    bots, switch = outage
    switch.on = False
    body = mention("Say maybe.")
    await bots.slack_event(http, body)
    await eventually(lambda: bots.job_state("slack", body["event_id"])
                     and bots.job_state("slack", body["event_id"])[0][1] >= 2)
    switch.on = True
    [answer] = await answered(bots, body)
    assert answer != APOLOGY
    [(state, attempts, _)] = bots.job_state("slack", body["event_id"])
    assert state == "done" and attempts >= 2


async def test_an_outage_mid_stream_ends_in_one_whole_message(
    outage: tuple[Bots, Switch], http: httpx.AsyncClient
) -> None:
    bots, switch = outage
    body = mention("Write a short poem about the sea, in four stanzas.")
    ev = body["event"]
    await bots.slack_event(http, body)
    try:
        # The answer is streaming to Slack when the way to the model server is cut.
        await eventually(lambda: any(m.get("streaming") and len(m["text"]) >= 60
                                     for (c, _), m in bots.slack.messages.items()
                                     if c == ev["channel"]), timeout=60, every=0.01)
        switch.on = False
        await eventually(lambda: bots.job_state("slack", body["event_id"])[0][1] >= 2)
        # Given up on for now, the stream was stopped, keeping the words it had shown.
        [cut] = [m for (c, _), m in bots.slack.messages.items() if c == ev["channel"]]
        assert not cut["streaming"] and cut["text"]
    finally:
        switch.on = True
    [answer] = await answered(bots, body)
    assert answer != APOLOGY
    # One message: the stream the first attempt started, edited whole by a later attempt.
    [start] = posts_in(bots, ev["channel"], ev["ts"])
    assert start["method"] == "chat.startStream"
    edits = [c.json["text"] for c in bots.slack.calls_to("chat.update")
             if c.json["channel"] == ev["channel"]]
    assert edits and edits[-1] == answer
    [(state, attempts, _)] = bots.job_state("slack", body["event_id"])
    assert state == "done" and attempts >= 2


async def test_a_long_outage_gets_one_short_apology(
    outage: tuple[Bots, Switch], http: httpx.AsyncClient
) -> None:
    bots, switch = outage
    switch.on = False
    try:
        body = mention("Say perhaps.")
        await bots.slack_event(http, body)
        await eventually(lambda: [s for s, *_ in bots.job_state("slack", body["event_id"])]
                         == ["failed"], timeout=60)
    finally:
        switch.on = True
    ev = body["event"]
    assert shown(bots, ev["channel"], ev["ts"]) == [APOLOGY]
    [(_, attempts, error)] = bots.job_state("slack", body["event_id"])
    assert attempts == 4
    assert error is not None and "model server" in error


@pytest.fixture(scope="module")
def stingy(service_keys: tuple[str, str], llama_server_bin: Path, redis_url: str, pg_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bots]:
    """Bots on a gateway that grants each person 40 tokens an hour."""
    home = tmp_path_factory.mktemp("stingy")
    settings = make_settings(**gateway_env(service_keys, llama_server_bin, redis_url, home,
                                           CHARLA_TOKEN_BUDGET="40/hour",
                                           CHARLA_ENGINE_PARALLEL="2",
                                           CHARLA_ENGINE_CTX_SIZE="4096"))
    server, _engine = start_gateway(settings, llama_server_bin)
    bots = start_bots(service_keys, server.url, fresh_database(pg_url), redis_url)
    yield bots
    bots.stop()
    server.stop()


async def test_a_person_over_their_budget_is_told_how_long_to_wait(
    stingy: Bots, http: httpx.AsyncClient
) -> None:
    first = mention("Say something.")
    first["event"]["user"] = user = f"U{uuid.uuid4().hex[:8].upper()}"
    await stingy.slack_event(http, first)
    await answered(stingy, first)  # this answer spends the hour's 40 tokens
    second = mention("And something else?")
    second["event"]["user"] = user
    await stingy.slack_event(http, second)
    [told] = await answered(stingy, second)
    assert told.startswith("You have used up your share") and "minute" in told
    [(state, attempts, _)] = stingy.job_state("slack", second["event_id"])
    assert (state, attempts) == ("done", 1)  # told at once, not after an hour of retries


async def test_a_job_run_again_after_its_answer_was_stored_asks_nothing_anew(
    outage: tuple[Bots, Switch], http: httpx.AsyncClient
) -> None:
    """A worker that stored the answer and died before ending the job: the job runs again
    when its lease runs out. It shows the stored answer, without asking the model (here
    unreachable) again or writing a second answer over the one already read."""
    bots, switch = outage
    body = mention("Say hello.")
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    switch.on = False
    try:
        bots.rows("UPDATE jobs SET state = 'queued', run_at = now() WHERE"
                  " payload->>'platform' = 'slack' AND payload->>'delivery_id' = %s"
                  " RETURNING id", body["event_id"])
        await eventually(lambda: bots.job_state("slack", body["event_id"])[0][:2]
                         == ("done", 2), timeout=30)
    finally:
        switch.on = True
    ev = body["event"]
    assert shown(bots, ev["channel"], ev["ts"]) == [answer]
    assert len(posts_in(bots, ev["channel"], ev["ts"])) == 1


class RefusingModelServer:
    """A model server that refuses every request with ``status`` (a bad service key: 401)."""

    def __init__(self) -> None:
        self.status = 401
        self.app = Starlette(routes=[Route("/{path:path}", self._refuse,
                                           methods=["GET", "POST"])])

    async def _refuse(self, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"error": {"message": "refused", "type": "invalid_request_error",
                                       "code": None}}, status_code=self.status)


@pytest.fixture(scope="module")
def refused(service_keys: tuple[str, str], pg_url: str,
            redis_url: str) -> Iterator[tuple[Bots, RefusingModelServer]]:
    model = RefusingModelServer()
    server = ServerThread(model.app).start()
    bots = start_bots(service_keys, server.url, fresh_database(pg_url), redis_url)
    yield bots, model
    bots.stop()
    server.stop()


@pytest.mark.parametrize(("status", "told"), [(401, APOLOGY), (403, APOLOGY), (400, APOLOGY),
                                               (413, TOO_LONG)])
async def test_a_model_server_that_refuses_for_good_gets_one_short_reply(
    refused: tuple[Bots, RefusingModelServer], http: httpx.AsyncClient, status: int, told: str
) -> None:
    """No attempt can help (the gateway refuses the service key, or the request): the job
    fails at once, and the person is told rather than left with silence."""
    bots, model = refused
    model.status = status
    body = mention("Say yes.")
    await bots.slack_event(http, body)
    await eventually(lambda: [s for s, *_ in bots.job_state("slack", body["event_id"])]
                     == ["failed"], timeout=30)
    ev = body["event"]
    assert shown(bots, ev["channel"], ev["ts"]) == [told]
    [(_, attempts, error)] = bots.job_state("slack", body["event_id"])
    assert attempts == 1 and error is not None and str(status) in error
