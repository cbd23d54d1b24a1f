"""Progressive replies through the real platform clients into the platforms' fakes.

No model here: the answer's text is chosen, so each platform's limit can be hit exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from functions.discord.client import DiscordClient
from functions.messaging import PlatformError, ReplyChannel, utf16_length
from functions.slack.client import SlackClient, SlackReply
from functions.telegram.client import TelegramClient
from functions.worker.reply import WITHDRAWN, ProgressiveReply
from shared.queue.outbox import Outbox
from shared.settings import Secret
from tests.conftest import ServerThread
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack
from tests.fakes.telegram_api import FakeTelegram

TG_TOKEN = "7000000002:AAH-reply-test-token-0123456789abcdef"
APP, DC_TOKEN = "1300000000000000077", "bot-token-for-reply-tests"


@dataclass
class Fakes:
    slack: FakeSlack
    telegram: FakeTelegram
    discord: FakeDiscord
    urls: dict[str, str]


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    slack, telegram, discord = FakeSlack(), FakeTelegram(TG_TOKEN), FakeDiscord(APP, DC_TOKEN)
    servers = {n: ServerThread(f.app).start()
               for n, f in (("slack", slack), ("telegram", telegram), ("discord", discord))}
    yield Fakes(slack, telegram, discord, {n: s.url for n, s in servers.items()})
    for server in servers.values():
        server.stop()


def channel(fakes: Fakes, http: httpx.AsyncClient, platform: str) -> tuple[ReplyChannel, Any]:
    """A reply channel on ``platform`` and a function that reads what the fake now shows."""
    if platform in ("slack", "slack-stream"):
        chan, thread = f"C{uuid.uuid4().hex[:8]}", "1718000000.000001"
        # With the asker's ids a Slack channel streams the first part; without, it posts.
        asker = {"user": "U02ALICE1", "team": "T0A1B2C3D"} if platform == "slack-stream" else {}
        reply = SlackClient(fakes.urls["slack"], Secret(BOT_TOKEN), http).reply_channel(
            {"channel": chan, "thread_ts": thread, **asker})
        return reply, lambda: [m["text"] for (c, _), m in sorted(fakes.slack.messages.items())
                               if c == chan]
    if platform in ("telegram", "telegram-draft"):
        # A private chat (positive id) sees drafts while the answer grows; a group posts+edits.
        chat = int(uuid.uuid4().int % 10**9) * (1 if platform == "telegram-draft" else -1)
        reply = TelegramClient(fakes.urls["telegram"], Secret(TG_TOKEN), http).reply_channel(
            {"chat_id": chat, "reply_to_message_id": 1})
        return reply, lambda: [t for (c, _), t in sorted(fakes.telegram.messages.items())
                               if c == chat]
    token = "tok" + uuid.uuid4().hex
    fakes.discord.open_interaction(token)
    reply = DiscordClient(fakes.urls["discord"], APP, Secret(DC_TOKEN), http).reply_channel(
        {"application_id": APP, "token": token})
    return reply, lambda: [fakes.discord.original(token), *fakes.discord.followups(token)]


LIMITS = {"slack": (3000, len), "slack-stream": (3000, len), "telegram": (4096, utf16_length),
          "telegram-draft": (4096, utf16_length), "discord": (2000, utf16_length)}


@pytest.mark.parametrize("platform", ["slack", "slack-stream", "telegram", "telegram-draft",
                                      "discord"])
@pytest.mark.parametrize("extra", [0, 1, 5000])
async def test_answers_at_and_over_the_limit(fakes: Fakes, http: httpx.AsyncClient,
                                             outbox: Outbox, platform: str, extra: int) -> None:
    limit, length = LIMITS[platform]
    text = ("palabra 🙂 " * limit)[:limit] if extra == 0 else (
        "palabra 🙂 " * (limit + extra))[:limit + extra]
    while length(text) > limit and extra == 0:
        text = text[:-1]
    text = text.strip()
    reply_channel, shown = channel(fakes, http, platform)
    reply = ProgressiveReply(reply_channel, outbox, f"test:{uuid.uuid4().hex}", interval_s=0,
                             first_after_s=0)
    for end in range(0, len(text), max(1, len(text) // 7)):
        await reply.update(text[:end])
    await reply.finish(text)
    parts = shown()
    assert all(length(p) <= limit for p in parts)
    expected = {0: 1, 1: 2}.get(extra)
    assert len(parts) == expected if expected else len(parts) >= 2
    assert " ".join(parts).split() == text.split()  # every word, none cut, none added
    if platform == "slack-stream":
        assert isinstance(reply_channel, SlackReply)
        assert next(c.method for c in fakes.slack.calls if c.json.get("channel") ==
                reply_channel.channel) == "chat.startStream"
        assert not any(m.get("streaming") for m in fakes.slack.messages.values())


async def test_a_second_run_edits_what_the_first_posted(fakes: Fakes, http: httpx.AsyncClient,
                                                        outbox: Outbox) -> None:
    reply_channel, shown = channel(fakes, http, "slack")
    delivery = f"test:{uuid.uuid4().hex}"
    first = ProgressiveReply(reply_channel, outbox, delivery, interval_s=0, first_after_s=0)
    await first.update("The first try was cut")
    # ...the job fails here and runs again, answering anew:
    second = ProgressiveReply(reply_channel, outbox, delivery, interval_s=0, first_after_s=0)
    await second.finish("The second try is whole.")
    assert shown() == ["The second try is whole."]


async def test_edits_wait_for_the_interval(fakes: Fakes, http: httpx.AsyncClient,
                                           outbox: Outbox) -> None:
    now = [0.0]
    reply_channel, shown = channel(fakes, http, "telegram")
    reply = ProgressiveReply(reply_channel, outbox, f"test:{uuid.uuid4().hex}",
                             interval_s=1.0, clock=lambda: now[0])
    before = len(fakes.telegram.called("editMessageText"))
    await reply.update("On")  # the first words: held back a moment...
    assert shown() == []
    now[0] += 0.5
    await reply.update("One")  # ...then posted
    for i in range(10):
        now[0] += 0.25
        await reply.update("One" + " more" * (i + 1))
    edits = len(fakes.telegram.called("editMessageText")) - before
    assert 2 <= edits <= 3  # 2.5 s of updates: one edit a second at most
    now[0] += 5
    await reply.finish("One more, done.")
    assert shown() == ["One more, done."]


@pytest.mark.parametrize("platform", ["slack", "slack-stream", "telegram", "discord"])
@pytest.mark.parametrize("rerun", [False, True])
async def test_parts_a_longer_text_showed_are_withdrawn_when_a_shorter_one_ends_it(
    fakes: Fakes, http: httpx.AsyncClient, outbox: Outbox, platform: str, rerun: bool
) -> None:
    """The apology after a long answer was cut, or a shorter answer from the job's next run:
    the first message says it, the rest of the old answer does not stay up beside it."""
    limit, _length = LIMITS[platform]
    long = ("The old answer goes on. " * limit)[:limit + 500]
    reply_channel, shown = channel(fakes, http, platform)
    delivery = f"test:{uuid.uuid4().hex}"
    first = ProgressiveReply(reply_channel, outbox, delivery, interval_s=0, first_after_s=0)
    await first.update(long)
    assert len(shown()) == 2
    last = ProgressiveReply(reply_channel, outbox, delivery, interval_s=0,
                            first_after_s=0) if rerun else first
    await last.finish("Sorry, I can't answer right now.")
    assert shown() == ["Sorry, I can't answer right now.", WITHDRAWN]


async def test_a_lost_fill_of_discords_deferred_answer_is_filled_by_the_next_run(
    fakes: Fakes, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    """Filling the deferred answer is an edit: when its answer is lost, the next run fills it
    again (before, the outbox's "fate unknown" kept it "thinking…" for good)."""
    reply_channel, shown = channel(fakes, http, "discord")
    delivery = f"test:{uuid.uuid4().hex}"
    fakes.discord.fail_next(1, "drop")
    first = ProgressiveReply(reply_channel, outbox, delivery, interval_s=0, first_after_s=0)
    with pytest.raises(PlatformError) as lost:
        await first.update("The first try was cut")
    assert lost.value.sent  # the request went out; Discord's answer never came
    second = ProgressiveReply(reply_channel, outbox, delivery, interval_s=0, first_after_s=0)
    await second.finish("The second try is whole.")
    assert shown() == ["The second try is whole."]
