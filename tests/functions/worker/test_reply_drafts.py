"""Answers shown as Telegram drafts while they are written, through the real client into
Telegram's fake: no model, a chosen text, the test's own clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from functions.telegram import client as telegram_client
from functions.telegram.client import TelegramClient, TelegramReply
from functions.worker.reply import ProgressiveReply
from shared.queue.outbox import Outbox
from shared.settings import Secret
from tests.conftest import ServerThread
from tests.fakes.telegram_api import FakeTelegram
from tests.functions.worker.conftest import Clock

TOKEN = "7000000003:AAH-draft-test-token-0123456789abcdef"
WORDS = [f"palabra{n}" for n in range(40)]
ANSWER = " ".join(WORDS)


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram(TOKEN)
    server = ServerThread(fake.app).start()
    yield fake, server.url
    server.stop()


class Chat:
    """One fresh chat: private (a positive id) unless ``group``."""

    def __init__(self, telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, *,
                 group: bool = False) -> None:
        self.fake, url = telegram
        self.id = int(uuid.uuid4().int % 10**9) * (-1 if group else 1)
        self.client = TelegramClient(url, Secret(TOKEN), http)

    def reply_channel(self, *, streaming: bool = True) -> TelegramReply:
        return self.client.reply_channel({"chat_id": self.id, "reply_to_message_id": 1},
                                         streaming=streaming)

    def methods(self) -> list[str]:
        return [c.method for c in self.fake.calls if c.json.get("chat_id") == self.id
                and c.method != "sendChatAction"]

    def sent(self) -> list[str]:
        return [t for (c, _), t in sorted(self.fake.messages.items()) if c == self.id]

    def draft_calls(self) -> list[dict[str, object]]:
        return [c.json for c in self.fake.called("sendMessageDraft")
                if c.json.get("chat_id") == self.id]


def progressive(channel: TelegramReply, outbox: Outbox, clock: Clock) -> ProgressiveReply:
    return ProgressiveReply(channel, outbox, f"test:{uuid.uuid4().hex}", interval_s=1.0,
                            first_after_s=0.5, clock=clock)


async def grow(reply: ProgressiveReply, clock: Clock, words: list[str], start: int = 1) -> None:
    for n in range(start, len(words) + 1):
        await reply.update(" ".join(words[:n]))
        clock.now += 0.25


async def test_a_private_answer_shows_as_a_draft_and_is_sent_once_whole(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http)
    reply = progressive(chat.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS)  # 10 s of words
    assert chat.sent() == [] and reply.showing and not reply.posted
    drafts = chat.draft_calls()
    assert 9 <= len(drafts) <= 11  # a draft a second at most
    assert len({d["draft_id"] for d in drafts}) == 1  # one draft, updated
    assert str(drafts[-1]["text"]).startswith("palabra0 palabra1")
    assert not str(drafts[-1]["text"]).endswith("…")
    await reply.finish(ANSWER)
    assert chat.sent() == [ANSWER]
    assert chat.methods().count("sendMessage") == 1 and "editMessageText" not in chat.methods()
    assert not [k for k in chat.fake.drafts if k[0] == chat.id]  # the message took its place


async def test_a_group_answer_is_posted_and_edited(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http, group=True)
    reply = progressive(chat.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS)
    await reply.finish(ANSWER)
    methods = chat.methods()
    assert "sendMessageDraft" not in methods
    assert methods[0] == "sendMessage" and methods.count("editMessageText") >= 5
    assert chat.sent() == [ANSWER]


async def test_drafts_can_be_switched_off(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http)
    reply = progressive(chat.reply_channel(streaming=False), outbox, clock)
    await grow(reply, clock, WORDS[:10])
    await reply.finish(ANSWER)
    assert "sendMessageDraft" not in chat.methods() and chat.sent() == [ANSWER]


async def test_where_telegram_refuses_drafts_the_answer_is_posted_and_edited(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http)
    chat.fake.refuse_drafts = "Bad Request: method is unavailable"
    try:
        reply = progressive(chat.reply_channel(), outbox, clock)
        await grow(reply, clock, WORDS)
        await reply.finish(ANSWER)
        assert chat.methods()[:2] == ["sendMessageDraft", "sendMessage"]
        assert chat.methods().count("editMessageText") >= 5 and chat.sent() == [ANSWER]
        # Remembered for the chat: the next answer does not try again.
        again = progressive(chat.reply_channel(), outbox, clock)
        await grow(again, clock, WORDS[:10])
        await again.finish("Otra respuesta.")
        assert chat.methods().count("sendMessageDraft") == 1
    finally:
        chat.fake.refuse_drafts = None
        telegram_client.draft_refusals.forget(chat.id)


async def test_a_rate_limited_draft_waits_and_loses_nothing(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http)
    reply = progressive(chat.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS[:3])  # the first draft at 0.5 s
    chat.fake.fail_next(1, status=429, retry_after=3)
    await grow(reply, clock, WORDS[:14], start=4)  # 0.75 s..3.25 s: refused at 1.5 s
    assert len(chat.draft_calls()) == 2 and chat.sent() == []  # the first, and the refused one
    await grow(reply, clock, WORDS[:20], start=15)  # 4.5 s and on: drafts again
    assert len(chat.draft_calls()) == 3
    await reply.finish(ANSWER)
    assert chat.sent() == [ANSWER]


async def test_an_answer_too_long_for_one_message_is_posted_as_it_fills(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http)
    reply = progressive(chat.reply_channel(), outbox, clock)
    long = ("palabra " * 1200).split()  # about 9,600 characters: three messages
    for n in range(100, len(long) + 1, 100):
        await reply.update(" ".join(long[:n]))
        clock.now += 1.0
    await reply.finish(" ".join(long))
    sent = chat.sent()
    assert len(sent) == 3 and " ".join(sent).split() == long
    assert len(chat.draft_calls()) >= 2  # drafted while it fit in one message


async def test_a_withdrawn_draft_leaves_one_message_the_refusal(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, outbox: Outbox, clock: Clock
) -> None:
    chat = Chat(telegram, http)
    reply = progressive(chat.reply_channel(), outbox, clock)
    await grow(reply, clock, WORDS[:12])
    await reply.replace("No puedo ayudar con eso.")
    assert chat.sent() == ["No puedo ayudar con eso."]
    assert "editMessageText" not in chat.methods()
