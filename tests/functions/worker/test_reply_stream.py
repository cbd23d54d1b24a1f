"""Answers streamed with Slack's native streaming, through the real client into Slack's fake.

No model here: the answer's text is chosen, and the clock is the test's, so each call the reply
makes can be named. The fake keeps what each message shows, refuses to edit a message that is
still streaming, and refuses to append to one that is not.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from functions.messaging import PlatformError
from functions.slack import client as slack_client
from functions.slack.client import SlackClient, SlackReply
from functions.worker.reply import ProgressiveReply
from shared.queue.outbox import Outbox
from shared.settings import Secret
from tests.fakes.slack_api import BOT_TOKEN, TEAM_ID, Call, FakeSlack
from tests.functions.worker.conftest import Clock

THREAD = "1718000000.000001"
ASKER = "U02ALICE1"


class Thread:
    """One fresh channel's thread: its reply channel, and what the fake shows and was sent."""

    def __init__(self, fake: FakeSlack, url: str, http: httpx.AsyncClient, *,
                 channel: str | None = None, **reply_to: str) -> None:
        self.fake = fake
        self.url = url
        self.channel = channel or f"C{uuid.uuid4().hex[:8].upper()}"
        self.reply_to = {"channel": self.channel, "thread_ts": THREAD, "user": ASKER,
                         "team": TEAM_ID, **reply_to}
        self.client = SlackClient(url, Secret(BOT_TOKEN), http)

    def reply_channel(self) -> SlackReply:
        return self.client.reply_channel({k: v for k, v in self.reply_to.items() if v})

    def shown(self) -> list[str]:
        return [m["text"] for (c, _), m in sorted(self.fake.messages.items())
                if c == self.channel]

    def calls(self) -> list[Call]:
        return [c for c in self.fake.calls if c.json and c.json.get("channel") == self.channel]

    def methods(self) -> list[str]:
        return [c.method.removeprefix("chat.") for c in self.calls()]

    def streaming(self) -> bool:
        return any(m.get("streaming") for (c, _), m in self.fake.messages.items()
                   if c == self.channel)


@pytest.fixture
def thread(slack: tuple[FakeSlack, str], http: httpx.AsyncClient) -> Thread:
    return Thread(*slack, http)


def progressive(channel: SlackReply, outbox: Outbox, clock: Clock,
                delivery: str | None = None) -> ProgressiveReply:
    return ProgressiveReply(channel, outbox, delivery or f"test:{uuid.uuid4().hex}",
                            interval_s=1.0, first_after_s=0.5, clock=clock)


async def grow(reply: ProgressiveReply, clock: Clock, words: list[str], step: float,
               start: int = 1) -> None:
    """Update ``reply`` with one more word every ``step`` seconds, from ``start`` words."""
    for n in range(start, len(words) + 1):
        await reply.update(" ".join(words[:n]))
        clock.now += step


WORDS = [f"palabra{n}" for n in range(40)]
ANSWER = " ".join(WORDS)


async def test_a_growing_answer_is_streamed_appended_once_a_second_and_stopped(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    reply = progressive(thread.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS, 0.25)  # 10 s of words
    assert thread.streaming()
    await reply.finish(ANSWER)
    methods = thread.methods()
    assert methods[0] == "startStream" and methods[-1] == "stopStream"
    assert set(methods[1:-1]) == {"appendStream"}
    assert 8 <= len(methods) - 2 <= 10  # ~10 s of growth: an append a second at most
    start = thread.calls()[0].json
    assert (start["thread_ts"], start["recipient_user_id"], start["recipient_team_id"]) == (
        THREAD, ASKER, TEAM_ID)
    assert not start["markdown_text"].endswith("…")  # a stream shows by itself it goes on
    assert thread.shown() == [ANSWER] and not thread.streaming()
    assert "chat.update" not in {c.method for c in thread.calls()}


async def test_leading_blanks_do_not_end_the_stream(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    reply = progressive(thread.reply_channel(), outbox, clock)
    for n in range(1, len(WORDS) + 1):  # the model's first token often starts with a blank
        await reply.update("\n " + " ".join(WORDS[:n]))
        clock.now += 0.25
    await reply.finish(ANSWER)  # the whole answer, stripped
    assert "update" not in thread.methods()
    assert thread.shown() == [ANSWER]


async def test_a_short_answer_is_posted_whole_not_streamed(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    reply = progressive(thread.reply_channel(), outbox, clock)
    await reply.update("Hola")
    clock.now += 0.1
    await reply.finish("Hola, ¿qué tal?")
    assert thread.methods() == ["postMessage"]
    assert thread.shown() == ["Hola, ¿qué tal?"]


async def test_a_withdrawn_stream_is_stopped_then_edited_into_the_refusal(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    reply = progressive(thread.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS[:12], 0.25)
    await reply.replace("I can't help with that.")
    assert thread.methods()[-2:] == ["stopStream", "update"]
    assert thread.shown() == ["I can't help with that."]
    stop = thread.calls()[-2].json
    assert "markdown_text" not in stop  # nothing more of the withdrawn text goes out


async def test_a_second_run_stops_the_first_runs_stream_and_edits_it(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    delivery = f"test:{uuid.uuid4().hex}"
    first = progressive(thread.reply_channel(), outbox, clock, delivery)
    await grow(first, clock, WORDS[:8], 0.25)
    assert thread.streaming()
    # ...the model server goes away here; the job runs again later, from a new process:
    second = progressive(thread.reply_channel(), outbox, clock, delivery)
    await grow(second, clock, WORDS, 0.25)
    await second.finish(ANSWER)
    assert thread.shown() == [ANSWER] and not thread.streaming()
    methods = thread.methods()
    assert methods.count("startStream") == 1 and "postMessage" not in methods
    # The second run edits: it stopped the open stream first, once.
    assert methods[methods.index("update") - 1] == "stopStream"
    assert methods.count("stopStream") == 1


async def test_a_second_run_after_the_stream_was_stopped_still_edits(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    delivery = f"test:{uuid.uuid4().hex}"
    first = progressive(thread.reply_channel(), outbox, clock, delivery)
    await grow(first, clock, WORDS[:8], 0.25)
    await first.finish("A first answer.")
    second = progressive(thread.reply_channel(), outbox, clock, delivery)
    await second.finish(ANSWER)  # Slack refuses to stop it again: that is fine
    assert thread.shown() == [ANSWER]


async def test_a_stream_slack_gave_up_on_is_edited_whole(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    fake = thread.fake
    reply = progressive(thread.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS[:8], 0.25)
    ts = next(ts for (c, ts) in fake.messages if c == thread.channel)
    fake.messages[(thread.channel, ts)]["streaming"] = False  # expired on Slack's side
    await grow(reply, clock, WORDS, 0.25, start=9)
    await reply.finish(ANSWER)
    assert thread.shown() == [ANSWER]
    methods = thread.methods()
    assert methods.count("startStream") == 1 and "postMessage" not in methods
    assert "update" in methods


async def test_a_rate_limited_append_waits_and_loses_nothing(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    fake = thread.fake
    reply = progressive(thread.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS[:6], 0.25)  # started
    fake.fail_next(1, mode="ratelimited", retry_after=3)
    await grow(reply, clock, WORDS[:18], 0.25, start=7)  # refused at 1.5 s: none until 4.5
    assert [c.method for c in thread.calls()].count("chat.appendStream") == 1
    await grow(reply, clock, WORDS[:22], 0.25, start=19)  # 4.5 s and on: appended again
    assert [c.method for c in thread.calls()].count("chat.appendStream") == 2
    await reply.finish(ANSWER)
    assert thread.shown() == [ANSWER]


@pytest.mark.parametrize(("streamed", "last"), [(True, "stopStream"), (False, "update")],
                         ids=["stop", "last edit"])
async def test_what_makes_the_answer_whole_waits_out_a_rate_limit(
    thread: Thread, clock: Clock, outbox: Outbox, streamed: bool, last: str
) -> None:
    if not streamed:
        thread.reply_to["user"] = ""  # a channel job without the asker: posted and edited
    reply = progressive(thread.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS, 0.25)
    thread.fake.fail_next(1, mode="ratelimited", retry_after=1)
    started = time.monotonic()
    await reply.finish(ANSWER)
    assert time.monotonic() - started >= 0.9  # Slack's Retry-After, waited out in place
    assert thread.methods()[-2:] == [last, last]
    assert thread.shown() == [ANSWER] and not thread.streaming()


async def test_a_stop_still_rate_limited_leaves_the_job_to_try_again(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    delivery = f"test:{uuid.uuid4().hex}"
    reply = progressive(thread.reply_channel(), outbox, clock, delivery)
    await grow(reply, clock, WORDS, 0.25)
    thread.fake.fail_next(4, mode="ratelimited", retry_after=0)
    with pytest.raises(PlatformError) as raised:
        # Stop, stop again; then the edit's own stop, and once more: all refused.
        await reply.finish(ANSWER)
    assert raised.value.status == 429  # a retry, with Slack's wait; not given up
    again = progressive(thread.reply_channel(), outbox, clock, delivery)
    await again.finish(ANSWER)
    assert thread.shown() == [ANSWER] and not thread.streaming()


@pytest.mark.parametrize("error", ["method_not_supported_for_channel_type",
                                   "missing_recipient_user_id", "ratelimited"])
async def test_where_slack_will_not_stream_the_answer_is_posted_and_edited(
    thread: Thread, clock: Clock, outbox: Outbox, error: str
) -> None:
    fake = thread.fake
    if error == "ratelimited":
        fake.fail_next(1, mode="ratelimited", retry_after=30)
    else:
        fake.refuse_streams = error
    try:
        reply = progressive(thread.reply_channel(), outbox, clock)
        await grow(reply, clock, WORDS, 0.25)
        await reply.finish(ANSWER)
        assert thread.methods()[:2] == ["startStream", "postMessage"]
        assert thread.calls()[1].json["text"].endswith(" …")  # marked as still growing
        assert thread.shown() == [ANSWER]
        assert thread.methods().count("update") >= 5  # edited as it grew
        # A permanent refusal is remembered for the channel; a rate limit is not.
        again = progressive(thread.reply_channel(), outbox, clock)
        await grow(again, clock, WORDS[:6], 0.25)
        await again.finish("Otra respuesta.")
        assert thread.methods().count("startStream") == (2 if error == "ratelimited" else 1)
    finally:
        fake.refuse_streams = None
        slack_client.stream_refusals.forget(thread.channel)


async def test_a_start_whose_answer_was_lost_is_not_posted_again(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    fake = thread.fake
    thread.client = SlackClient(thread.url, Secret(BOT_TOKEN), httpx.AsyncClient(timeout=0.5))
    fake.fail_next(1, mode="slow", delay_s=1.0)  # Slack starts it, but answers too late
    reply = progressive(thread.reply_channel(), outbox, clock)
    delivery = reply._delivery
    with pytest.raises(PlatformError) as raised:
        await grow(reply, clock, WORDS[:6], 0.25)
    assert raised.value.sent
    again = progressive(thread.reply_channel(), outbox, clock, delivery)
    await grow(again, clock, WORDS, 0.25)
    await again.finish(ANSWER)
    await thread.client._http.aclose()
    assert [m for m in thread.methods() if m in ("startStream", "postMessage")] == [
        "startStream"]


async def test_who_may_be_offered_a_stream(slack: tuple[FakeSlack, str],
                                           http: httpx.AsyncClient) -> None:
    client = SlackClient(slack[1], Secret(BOT_TOKEN), http)
    in_channel = {"channel": "C0CHANNEL1", "thread_ts": THREAD}
    assert client.reply_channel({**in_channel, "user": ASKER, "team": TEAM_ID}).can_stream()
    # A job queued before the asker was recorded: in a channel Slack needs them.
    assert not client.reply_channel(in_channel).can_stream()
    assert client.reply_channel({"channel": "D0DIRECT01", "thread_ts": THREAD}).can_stream()
    assert not client.reply_channel({"channel": "D0DIRECT01"}).can_stream()  # no thread
    assert not client.reply_channel({**in_channel, "user": ASKER, "team": TEAM_ID},
                                    streaming=False).can_stream()  # CHARLA_SLACK_STREAMING=off



async def test_a_streamed_answer_marks_its_sources_in_markdown(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    channel = thread.reply_channel()
    assert channel.sources(["a.pdf"]) == "*Sources:*\n[1] a.pdf"  # mrkdwn, as posted
    reply = progressive(channel, outbox, clock)
    await grow(reply, clock, WORDS[:8], 0.25)
    footer = channel.sources(["a.pdf", "b.md"])
    assert footer == "**Sources:**\n[1] a.pdf\n[2] b.md"  # the stream renders Markdown
    await reply.finish(" ".join(WORDS[:8]) + "\n\n" + footer)
    assert thread.shown()[0].endswith(footer)


async def test_ending_the_streams_of_a_failed_answer_never_raises(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    delivery = f"test:{uuid.uuid4().hex}"
    reply = progressive(thread.reply_channel(), outbox, clock, delivery)
    await grow(reply, clock, WORDS[:8], 0.25)
    thread.fake.fail_next(1, mode="server_error")
    await reply.end_streams()  # Slack failed to stop it: the next run will
    assert thread.streaming()
    again = progressive(thread.reply_channel(), outbox, clock, delivery)
    await again.finish(ANSWER)
    assert thread.shown() == [ANSWER] and not thread.streaming()


# Rate limits on the post-then-edit path (a channel that does not stream: no asker's ids).

async def test_a_rate_limited_edit_is_skipped_not_fatal(
    thread: Thread, clock: Clock, outbox: Outbox
) -> None:
    thread.reply_to["user"] = ""  # a channel job without the asker: posted and edited
    reply = progressive(thread.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS[:8], 0.25)  # posted at 0.5 s, edited at 1.5 s
    thread.fake.fail_next(1, mode="ratelimited", retry_after=3)
    await grow(reply, clock, WORDS[:20], 0.25, start=9)  # 2.0 s: refused; none until 5.0 s
    assert thread.methods().count("update") == 2
    await grow(reply, clock, WORDS[:26], 0.25, start=21)  # 5.0 s and on: edited again
    assert thread.methods().count("update") == 3
    await reply.finish(ANSWER)
    assert thread.methods()[0] == "postMessage" and thread.shown() == [ANSWER]
