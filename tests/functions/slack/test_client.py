"""The Slack client against a local fake of Slack's Web API (Slack itself is outside)."""

from __future__ import annotations

import logging
import traceback
from typing import cast

import httpx
import pytest

from functions.messaging import PlatformError, ReplyChannel
from functions.slack.client import SlackClient, SlackReply, escape
from shared.settings import Secret
from tests.conftest import ServerThread, free_port
from tests.fakes.slack_api import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    TEAM_ID,
    FailureMode,
    FakeSlack,
)

CHANNEL, THREAD = "C05GENERL1", "1718000100.000200"


async def test_post_message_posts_in_the_thread(fake: FakeSlack, slack: SlackClient) -> None:
    ts = await slack.post_message(CHANNEL, "Alice is on call.", thread_ts=THREAD)
    [call] = fake.calls
    assert call.method == "chat.postMessage"
    assert call.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert call.headers["content-type"] == "application/json; charset=utf-8"
    assert call.json == {
        "channel": CHANNEL,
        "thread_ts": THREAD,
        "text": "Alice is on call.",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Alice is on call."}}],
    }
    assert fake.messages[(CHANNEL, ts)]["thread_ts"] == THREAD


async def test_each_post_returns_slacks_new_ts(fake: FakeSlack, slack: SlackClient) -> None:
    first = await slack.post_message(CHANNEL, "one")
    second = await slack.post_message(CHANNEL, "two")
    assert first != second
    assert {ts for (_, ts) in fake.messages} == {first, second}
    assert "thread_ts" not in fake.calls[0].json


async def test_update_replaces_the_text(fake: FakeSlack, slack: SlackClient) -> None:
    ts = await slack.post_message(CHANNEL, "Alice is", thread_ts=THREAD)
    await slack.update(CHANNEL, ts, "Alice is on call, Bob is backup.")
    call = fake.calls_to("chat.update")[0]
    assert call.json["ts"] == ts and call.json["channel"] == CHANNEL
    message = fake.messages[(CHANNEL, ts)]
    assert message["text"] == "Alice is on call, Bob is backup."
    assert message["blocks"][0]["text"]["text"] == "Alice is on call, Bob is backup."


async def test_update_of_an_unknown_message_fails(slack: SlackClient) -> None:
    with pytest.raises(PlatformError) as info:
        await slack.update(CHANNEL, "1718000000.999999", "x")
    assert "message_not_found" in info.value.message
    assert info.value.sent is False


async def test_auth_test_names_the_bot(fake: FakeSlack, slack: SlackClient) -> None:
    me = await slack.auth_test()
    assert (me["team_id"], me["user_id"], me["bot_id"]) == (TEAM_ID, BOT_USER_ID, BOT_ID)
    assert fake.calls[0].method == "auth.test"


async def test_model_output_cannot_ping_anyone(fake: FakeSlack, slack: SlackClient) -> None:
    text = "<!channel> ask <@U02ALICE1> & <https://evil.example|click> -> done"
    ts = await slack.post_message(CHANNEL, text, thread_ts=THREAD)
    sent = fake.calls[0].json
    expected = ("&lt;!channel&gt; ask &lt;@U02ALICE1&gt; &amp; "
                "&lt;https://evil.example|click&gt; -&gt; done")
    assert sent["text"] == expected
    assert sent["blocks"][0]["text"]["text"] == expected
    assert "<" not in str(fake.messages[(CHANNEL, ts)]["blocks"])


def test_escape_is_slacks_three_entities() -> None:
    assert escape("a & b < c > d &amp;") == "a &amp; b &lt; c &gt; d &amp;amp;"
    assert escape("*bold* _it_ `code` 🚀") == "*bold* _it_ `code` 🚀"


async def test_slack_error_body_is_a_platform_error(fake: FakeSlack, slack: SlackClient) -> None:
    fake.fail_next(mode="error", error="channel_not_found")
    with pytest.raises(PlatformError) as info:
        await slack.post_message(CHANNEL, "hi")
    assert (info.value.sent, info.value.status) == (False, 200)
    assert "channel_not_found" in info.value.message
    assert len(fake.calls) == 1  # no automatic retry


async def test_a_wrong_token_is_invalid_auth(fake_server: tuple[FakeSlack, ServerThread],
                                             fake: FakeSlack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        client = SlackClient(fake_server[1].url, Secret("xoxb-not-the-token"), http)
        with pytest.raises(PlatformError, match="invalid_auth"):
            await client.auth_test()


async def test_rate_limit_carries_retry_after(fake: FakeSlack, slack: SlackClient) -> None:
    fake.fail_next(mode="ratelimited", retry_after=7)
    with pytest.raises(PlatformError) as info:
        await slack.post_message(CHANNEL, "hi", thread_ts=THREAD)
    assert (info.value.sent, info.value.status, info.value.retry_after) == (False, 429, 7.0)
    assert len(fake.calls) == 1
    assert not fake.messages


async def test_server_error_is_not_sent(fake: FakeSlack, slack: SlackClient) -> None:
    fake.fail_next(mode="server_error")
    with pytest.raises(PlatformError) as info:
        await slack.update(CHANNEL, "1718000000.000001", "x")
    assert (info.value.sent, info.value.status) == (False, 500)
    assert len(fake.calls) == 1


async def test_no_answer_in_time_counts_as_sent(fake_server: tuple[FakeSlack, ServerThread],
                                                fake: FakeSlack) -> None:
    fake.fail_next(mode="slow", delay_s=1.0)
    async with httpx.AsyncClient(timeout=0.2) as http:
        client = SlackClient(fake_server[1].url, Secret(BOT_TOKEN), http)
        with pytest.raises(PlatformError) as info:
            await client.post_message(CHANNEL, "hi", thread_ts=THREAD)
    assert info.value.sent is True  # posting again could post twice
    assert info.value.status is None
    assert "ReadTimeout" in info.value.message
    assert len(fake.calls) == 1


async def test_unreachable_slack_is_not_sent() -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        client = SlackClient(f"http://127.0.0.1:{free_port()}", Secret(BOT_TOKEN), http)
        with pytest.raises(PlatformError) as info:
            await client.post_message(CHANNEL, "hi")
    assert info.value.sent is False
    assert "could not connect" in info.value.message


async def test_reply_channel_posts_and_edits_in_the_thread(fake: FakeSlack,
                                                           slack: SlackClient) -> None:
    reply: ReplyChannel = slack.reply_channel({"channel": CHANNEL, "thread_ts": THREAD})
    await reply.typing()
    assert fake.calls == []  # bots have no typing indicator
    ref = await reply.post("first part", 0)
    await reply.edit(ref, "first part, longer", 0)
    second = await reply.post("second part", 1)
    assert [call.method for call in fake.calls] == ["chat.postMessage", "chat.update",
                                                     "chat.postMessage"]
    assert fake.messages[(CHANNEL, ref)]["text"] == "first part, longer"
    assert fake.messages[(CHANNEL, second)]["thread_ts"] == THREAD


async def test_max_length_is_measured_after_escaping(fake: FakeSlack,
                                                     slack: SlackClient) -> None:
    reply = slack.reply_channel({"channel": CHANNEL, "thread_ts": THREAD})
    assert reply.max_length == 3000
    assert reply.length("a < b") == len("a &lt; b")
    fits = "&" * (reply.max_length // 5)  # each & is sent as &amp;
    assert reply.length(fits) == reply.max_length
    await reply.post(fits, 0)
    too_long = fits + "&"
    assert reply.length(too_long) > reply.max_length
    # Slack refuses a section over 3000 characters: the limit is real, not ours.
    with pytest.raises(PlatformError, match="invalid_blocks"):
        await reply.post(too_long, 1)


@pytest.mark.parametrize("reply_to", [{}, {"channel": ""}, {"channel": 5},
                                      {"channel": CHANNEL, "thread_ts": 1.5}])
def test_reply_channel_needs_a_channel(slack: SlackClient, reply_to: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="reply_to"):
        slack.reply_channel(reply_to)


def test_reply_channel_without_thread(slack: SlackClient) -> None:
    reply = slack.reply_channel({"channel": CHANNEL})
    assert isinstance(reply, SlackReply)
    assert reply.thread_ts is None


@pytest.mark.parametrize("failure", ["ratelimited", "error", "server_error", "slow",
                                     "unreachable", "wrong token"])
async def test_the_token_never_shows_in_errors_or_logs(
        fake_server: tuple[FakeSlack, ServerThread], fake: FakeSlack,
        caplog: pytest.LogCaptureFixture, failure: str) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: httpx and httpcore log too
    url, token = fake_server[1].url, BOT_TOKEN
    if failure == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
    elif failure == "wrong token":
        token = BOT_TOKEN[::-1]
    elif failure in ("ratelimited", "error", "server_error", "slow"):
        fake.fail_next(mode=cast(FailureMode, failure), delay_s=1.0)
    async with httpx.AsyncClient(timeout=0.3) as http:
        client = SlackClient(url, Secret(token), http)
        with pytest.raises(PlatformError) as info:
            await client.post_message(CHANNEL, "hi", thread_ts=THREAD)
    exc = info.value
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), caplog.text,
             repr(vars(exc))]
    assert caplog.records  # the check below looked at real log lines
    for text in shown:
        assert token not in text
        assert "fAkEsEcReT" not in text and "TeRcEsEkAf" not in text
