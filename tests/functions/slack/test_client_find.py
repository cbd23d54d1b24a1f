"""Marked posts and finding them again: the Slack client's side of reconciling a post whose
answer was lost (functions/worker/capabilities.py's ``Finds``)."""

from __future__ import annotations

from typing import cast

import httpx
import pytest

import functions.slack.client as slack_client
from functions.messaging import PlatformError
from functions.slack.client import ANSWER_EVENT, SlackClient, SlackReply
from tests.conftest import ServerThread
from tests.fakes.slack_api import BOT_TOKEN, FailureMode, FakeSlack

CHANNEL, THREAD = "C05GENERL1", "1718000100.000200"
MARK = "slack:Ev0FINDME1"


def reply(slack: SlackClient, mark: str | None = MARK) -> SlackReply:
    return slack.reply_channel({"channel": CHANNEL, "thread_ts": THREAD}, mark=mark)


async def test_a_marked_post_carries_the_delivery_and_part(fake: FakeSlack,
                                                           slack: SlackClient) -> None:
    await reply(slack).post("Part two.", 1)
    await reply(slack, mark=None).post("Unmarked.", 0)
    marked, unmarked = fake.calls_to("chat.postMessage")
    assert marked.json["metadata"] == {"event_type": ANSWER_EVENT,
                                       "event_payload": {"delivery": MARK, "part": 1}}
    assert "metadata" not in unmarked.json


async def test_find_returns_the_ts_of_this_answers_part(fake: FakeSlack,
                                                        slack: SlackClient) -> None:
    other = await reply(slack, mark="slack:Ev0OTHER01").post("Another answer.", 0)
    first = await reply(slack).post("Part one.", 0)
    second = await reply(slack).post("Part two.", 1)
    assert await reply(slack).find(0) == first
    assert await reply(slack).find(1) == second
    assert await reply(slack).find(2) is None
    assert await reply(slack, mark="slack:Ev0OTHER01").find(0) == other
    [call, *_] = fake.calls_to("conversations.replies")
    assert call.json["ts"] == THREAD and call.json["include_all_metadata"] == "true"


async def test_replies_show_metadata_only_when_asked(
        fake_server: tuple[FakeSlack, ServerThread], fake: FakeSlack, slack: SlackClient) -> None:
    await reply(slack).post("Part one.", 0)
    async with httpx.AsyncClient(base_url=fake_server[1].url) as http:
        plain = (await http.get("/conversations.replies", params={
            "channel": CHANNEL, "ts": THREAD},
            headers={"Authorization": f"Bearer {BOT_TOKEN}"})).json()
    assert plain["ok"] and "metadata" not in plain["messages"][0]
    [message], _ = await slack.replies(CHANNEL, THREAD)
    assert message["metadata"]["event_payload"] == {"delivery": MARK, "part": 0}


async def test_find_reads_the_pages_of_a_long_thread(fake: FakeSlack, slack: SlackClient,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack_client, "REPLIES_PAGE", 2)
    for n in range(5):
        await reply(slack, mark=f"slack:Ev{n}").post(f"Answer {n}.", 0)
    last = await reply(slack).post("This one.", 0)
    assert await reply(slack).find(0) == last
    assert len(fake.calls_to("conversations.replies")) == 3
    monkeypatch.setattr(slack_client, "REPLIES_PAGES", 2)
    with pytest.raises(LookupError):  # longer than it reads: cannot tell
        await reply(slack).find(0)


async def test_find_cannot_tell_without_a_mark_or_a_thread(slack: SlackClient) -> None:
    with pytest.raises(LookupError):
        await reply(slack, mark=None).find(0)
    with pytest.raises(LookupError):
        await slack.reply_channel({"channel": "D0DIRECT01"}, mark=MARK).find(0)


async def test_find_that_slack_cannot_answer_now_raises(fake: FakeSlack,
                                                        slack: SlackClient) -> None:
    fake.fail_next(mode="ratelimited", retry_after=3)
    with pytest.raises(PlatformError) as info:
        await reply(slack).find(0)
    assert info.value.status == 429
    fake.fail_next(mode="error", error="missing_scope")  # refused for good: cannot tell
    with pytest.raises(LookupError):
        await reply(slack).find(0)


@pytest.mark.parametrize(("mode", "error"), [("acted_server_error", ""),
                                             ("acted_error", "internal_error"),
                                             ("acted_error", "fatal_error")])
async def test_a_post_slack_failed_may_have_been_posted(fake: FakeSlack, slack: SlackClient,
                                                        mode: str, error: str) -> None:
    fake.fail_next(mode=cast(FailureMode, mode), error=error)
    with pytest.raises(PlatformError) as info:
        await reply(slack).post("Part one.", 0)
    assert info.value.sent is True  # Slack may have posted (here it did)
    assert not info.value.permanent
    assert await reply(slack).find(0) is not None


@pytest.mark.parametrize(("mode", "error"), [("server_error", ""),
                                             ("error", "internal_error")])
async def test_other_methods_failing_so_are_not_sent(fake: FakeSlack, slack: SlackClient,
                                                     mode: str, error: str) -> None:
    fake.fail_next(mode=cast(FailureMode, mode), error=error)
    with pytest.raises(PlatformError) as info:
        await slack.update(CHANNEL, "1718000000.000001", "x")
    assert info.value.sent is False
