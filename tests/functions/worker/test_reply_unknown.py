"""Posts whose fate is unknown (the request went out, no answer came back, or Slack failed
after it may have acted): the job's next run looks for them in the thread, and edits what it
finds or posts what it does not, so each part shows exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import cast

import httpx
import pytest

from functions.messaging import PlatformError
from functions.slack.client import SlackClient, SlackReply
from functions.worker.reply import ProgressiveReply
from shared.queue.outbox import Outbox
from shared.settings import Secret
from tests.fakes.slack_api import BOT_TOKEN, FailureMode, FakeSlack

THREAD = "1718000000.000001"
ASKER = {"user": "U02ALICE1", "team": "T0A1B2C3D"}


def thread(slack: tuple[FakeSlack, str], http: httpx.AsyncClient, delivery: str, *,
           stream: bool = False) -> tuple[SlackReply, Callable[[], list[str]]]:
    """A reply in a fresh channel's thread, marked with ``delivery``; and what it shows."""
    fake, url = slack
    channel = f"C{uuid.uuid4().hex[:8]}"
    reply = SlackClient(url, Secret(BOT_TOKEN), http).reply_channel(
        {"channel": channel, "thread_ts": THREAD, **(ASKER if stream else {})},
        streaming=stream, mark=delivery)
    return reply, lambda: [m["text"] for (c, _), m in sorted(fake.messages.items())
                           if c == channel]


def run(reply: SlackReply, outbox: Outbox, delivery: str) -> ProgressiveReply:
    """One run of the job's answer."""
    return ProgressiveReply(reply, outbox, delivery, interval_s=0, first_after_s=0)


def posts(fake: FakeSlack, reply: SlackReply) -> list[str]:
    return [c.method for c in fake.calls
            if c.method in ("chat.postMessage", "chat.startStream")
            and c.json.get("channel") == reply.channel]


@pytest.mark.parametrize(("mode", "error"), [("acted_server_error", ""),
                                             ("acted_error", "internal_error")])
async def test_a_post_slack_made_but_failed_is_found_and_edited(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient, outbox: Outbox, mode: str,
    error: str
) -> None:
    fake, _ = slack
    delivery = f"slack:{uuid.uuid4().hex}"
    reply, shown = thread(slack, http, delivery)
    fake.fail_next(1, mode=cast(FailureMode, mode), error=error)
    with pytest.raises(PlatformError) as failed:
        await run(reply, outbox, delivery).finish("The first try.")
    assert failed.value.sent  # Slack may have posted: do not post again blindly
    await run(reply, outbox, delivery).finish("The second try is whole.")
    assert shown() == ["The second try is whole."]  # one message, edited
    assert posts(fake, reply) == ["chat.postMessage"]
    assert (await outbox.parts(delivery))[0] is not None  # found, and recorded


async def test_a_lost_post_slack_never_made_is_posted_once_it_cannot_still_land(
    slack: tuple[FakeSlack, str], outbox: Outbox
) -> None:
    fake, _ = slack
    delivery = f"slack:{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=0.3) as http:
        reply, shown = thread(slack, http, delivery)
        fake.fail_next(1, mode="lost", delay_s=1.0)  # Slack did nothing; no answer came
        with pytest.raises(PlatformError) as lost:
            await run(reply, outbox, delivery).update("The first try")
        assert lost.value.sent
        # At once, the post could still be on its way: look again later, post nothing.
        with pytest.raises(PlatformError, match="not found yet") as early:
            await run(reply, outbox, delivery).finish("The second try.")
        assert early.value.retry_after and 0 < early.value.retry_after <= reply.settle_s
        assert shown() == []
        reply.settle_s = 0.0  # ...later, it cannot land any more
        await run(reply, outbox, delivery).finish("The third try is whole.")
    assert shown() == ["The third try is whole."]
    assert posts(fake, reply) == ["chat.postMessage", "chat.postMessage"]


async def test_a_lost_post_is_found_by_a_run_that_goes_on_growing(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient, outbox: Outbox
) -> None:
    fake, _ = slack
    delivery = f"slack:{uuid.uuid4().hex}"
    reply, shown = thread(slack, http, delivery)
    fake.fail_next(1, mode="acted_server_error")
    with pytest.raises(PlatformError):
        await run(reply, outbox, delivery).update("The first")
    second = run(reply, outbox, delivery)
    await second.update("The second try")
    assert second.posted
    await second.finish("The second try, whole.")
    assert shown() == ["The second try, whole."]
    assert posts(fake, reply) == ["chat.postMessage"]


async def test_a_stream_start_whose_fate_is_unknown_is_not_started_again(
    slack: tuple[FakeSlack, str], outbox: Outbox
) -> None:
    """chat.startStream takes no metadata: such a start cannot be found, and is left."""
    fake, _ = slack
    delivery = f"slack:{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=0.3) as http:
        reply, shown = thread(slack, http, delivery, stream=True)
        reply.settle_s = 0.0
        fake.fail_next(1, mode="lost", delay_s=1.0)
        with pytest.raises(PlatformError) as lost:
            await run(reply, outbox, delivery).update("The first try")
        assert lost.value.sent
        await run(reply, outbox, delivery).finish("The second try.")
    assert shown() == []
    assert posts(fake, reply) == ["chat.startStream"]
    assert not [c for c in fake.calls_to("conversations.replies")
                if c.json.get("channel") == reply.channel]


async def test_a_find_slack_cannot_answer_posts_nothing_and_fails_the_run(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient, outbox: Outbox
) -> None:
    fake, _ = slack
    delivery = f"slack:{uuid.uuid4().hex}"
    reply, shown = thread(slack, http, delivery)
    fake.fail_next(1, mode="acted_error", error="fatal_error")
    with pytest.raises(PlatformError):
        await run(reply, outbox, delivery).finish("The first try.")
    fake.fail_next(1, mode="ratelimited", retry_after=5)  # conversations.replies
    with pytest.raises(PlatformError) as limited:
        await run(reply, outbox, delivery).finish("The second try.")
    assert limited.value.status == 429
    assert shown() == ["The first try."] and len(posts(fake, reply)) == 1
    await run(reply, outbox, delivery).finish("The third try.")
    assert shown() == ["The third try."]


async def test_a_part_claimed_for_a_refused_stream_is_recorded_as_a_post(
    outbox: Outbox
) -> None:
    delivery = f"slack:{uuid.uuid4().hex}"
    assert (await outbox.claim(delivery, 0, stream=True)).new
    again = await outbox.claim(delivery, 0)
    assert not again.new and again.stream and again.ref is None and again.age_s >= 0
    await outbox.posting(delivery, 0)  # the stream was refused: posted instead
    assert not (await outbox.claim(delivery, 0)).stream
    assert (await outbox.parts(delivery)) == {0: None}
