"""The Bot API client and reply channel, against a local fake of the Bot API."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from functions.messaging import PlatformError, ReplyChannel
from functions.telegram.client import TelegramClient, TelegramReply
from functions.telegram.payload import bot_id_from_token
from shared.settings import Secret
from tests.conftest import ServerThread, free_port
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "6100000001:AAHf3kq9ZpLwN2xVb7TcR1sYuQe4mJd8oGi"
SECRET_PART = TOKEN.partition(":")[2]
CHAT = 1111111111
GROUP = -1009876543210


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram(TOKEN)
    thread = ServerThread(fake.app).start()
    yield fake, thread.url
    thread.stop()


@pytest.fixture
def fake(server: tuple[FakeTelegram, str]) -> FakeTelegram:
    server[0].reset()
    return server[0]


@pytest.fixture
async def client(server: tuple[FakeTelegram, str],
                 fake: FakeTelegram) -> AsyncIterator[TelegramClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield TelegramClient(server[1], Secret(TOKEN), http)


async def test_send_message_replies_as_plain_text(client: TelegramClient,
                                                  fake: FakeTelegram) -> None:
    message_id = await client.send_message(GROUP, "Hello *there*", message_thread_id=42,
                                           reply_to_message_id=57)
    [call] = fake.calls
    assert (call.method, call.http_method, call.status) == ("sendMessage", "POST", 200)
    assert call.path == f"/bot{TOKEN}/sendMessage"
    assert call.headers["content-type"] == "application/json"
    assert call.json == {
        "chat_id": GROUP, "text": "Hello *there*", "message_thread_id": 42,
        "reply_parameters": {"message_id": 57, "allow_sending_without_reply": True},
        "link_preview_options": {"is_disabled": True},
    }
    assert fake.messages[(GROUP, message_id)] == "Hello *there*"


async def test_send_message_without_reply_or_topic(client: TelegramClient,
                                                   fake: FakeTelegram) -> None:
    await client.send_message(CHAT, "plain")
    assert fake.calls[0].json == {"chat_id": CHAT, "text": "plain",
                                  "link_preview_options": {"is_disabled": True}}


async def test_edit_message_text(client: TelegramClient, fake: FakeTelegram) -> None:
    message_id = await client.send_message(CHAT, "draft")
    await client.edit_message_text(CHAT, message_id, "final answer")
    assert fake.messages[(CHAT, message_id)] == "final answer"
    assert fake.called("editMessageText")[0].json == {
        "chat_id": CHAT, "message_id": message_id, "text": "final answer",
        "link_preview_options": {"is_disabled": True}}


async def test_editing_to_the_same_text_is_fine(client: TelegramClient,
                                                fake: FakeTelegram) -> None:
    message_id = await client.send_message(CHAT, "same")
    await client.edit_message_text(CHAT, message_id, "same")
    assert fake.called("editMessageText")[0].status == 400  # Telegram refused; we shrug


async def test_editing_a_missing_message_fails(client: TelegramClient) -> None:
    with pytest.raises(PlatformError) as info:
        await client.edit_message_text(CHAT, 999999, "text")
    assert info.value.status == 400
    assert "message to edit not found" in info.value.message
    assert info.value.sent is False


async def test_send_chat_action(client: TelegramClient, fake: FakeTelegram) -> None:
    await client.send_chat_action(GROUP, message_thread_id=42)
    await client.send_chat_action(CHAT)
    assert [c.json for c in fake.called("sendChatAction")] == [
        {"chat_id": GROUP, "action": "typing", "message_thread_id": 42},
        {"chat_id": CHAT, "action": "typing"},
    ]


async def test_get_me(client: TelegramClient) -> None:
    me = await client.get_me()
    assert me["id"] == bot_id_from_token(TOKEN)
    assert me["username"] == "charla_test_bot"
    assert me["is_bot"] is True


async def test_webhook_set_read_and_deleted(client: TelegramClient,
                                            fake: FakeTelegram) -> None:
    await client.set_webhook("https://bot.acme.example/telegram/webhook",
                             secret_token=Secret("hook_secret-1"),
                             allowed_updates=["message"], max_connections=20)
    assert fake.called("setWebhook")[0].json == {
        "url": "https://bot.acme.example/telegram/webhook", "secret_token": "hook_secret-1",
        "allowed_updates": ["message"], "max_connections": 20, "drop_pending_updates": False}
    info = await client.get_webhook_info()
    assert info["url"] == "https://bot.acme.example/telegram/webhook"
    assert info["max_connections"] == 20
    await client.delete_webhook()
    assert (await client.get_webhook_info())["url"] == ""
    assert [c.method for c in fake.calls] == ["setWebhook", "getWebhookInfo", "deleteWebhook",
                                              "getWebhookInfo"]


async def test_an_invalid_webhook_secret_is_refused_before_sending(
        client: TelegramClient, fake: FakeTelegram) -> None:
    with pytest.raises(ValueError) as info:
        await client.set_webhook("https://x.example/hook", secret_token="not allowed!",
                                 allowed_updates=["message"], max_connections=10)
    assert "not allowed!" not in str(info.value)
    assert fake.calls == []


async def test_a_wrong_token_is_unauthorized(server: tuple[FakeTelegram, str],
                                             fake: FakeTelegram) -> None:
    other = "6100000001:BBBf3kq9ZpLwN2xVb7TcR1sYuQe4mJd8oGi"
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(PlatformError) as info:
            await TelegramClient(server[1], Secret(other), http).get_me()
    assert (info.value.status, info.value.sent) == (401, False)
    assert "Unauthorized" in info.value.message
    assert other not in str(info.value)


async def test_a_message_over_4096_is_refused(client: TelegramClient) -> None:
    with pytest.raises(PlatformError) as info:
        await client.send_message(CHAT, "x" * 4097)
    assert (info.value.status, info.value.sent) == (400, False)
    assert "message is too long" in info.value.message


async def test_429_carries_retry_after(client: TelegramClient, fake: FakeTelegram) -> None:
    fake.fail_next(status=429, retry_after=7)
    with pytest.raises(PlatformError) as info:
        await client.send_message(CHAT, "hello")
    assert (info.value.status, info.value.sent, info.value.retry_after) == (429, False, 7.0)
    assert fake.messages == {}
    await client.send_message(CHAT, "hello")  # only the next call was made to fail
    assert len(fake.messages) == 1


async def test_500_is_not_sent(client: TelegramClient, fake: FakeTelegram) -> None:
    fake.fail_next(status=500)
    with pytest.raises(PlatformError) as info:
        await client.send_message(CHAT, "hello")
    assert (info.value.status, info.value.sent, info.value.retry_after) == (500, False, None)


async def test_an_unreachable_api_is_not_sent() -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        client = TelegramClient(f"http://127.0.0.1:{free_port()}", Secret(TOKEN), http)
        with pytest.raises(PlatformError) as info:
            await client.send_message(CHAT, "hello")
    assert (info.value.status, info.value.sent) == (None, False)


async def test_a_timeout_may_have_been_sent(server: tuple[FakeTelegram, str],
                                            fake: FakeTelegram) -> None:
    fake.delay_next(seconds=1.0)
    async with httpx.AsyncClient(timeout=0.2) as http:
        with pytest.raises(PlatformError) as info:
            await TelegramClient(server[1], Secret(TOKEN), http).send_message(CHAT, "hello")
    assert (info.value.status, info.value.sent) == (None, True)
    assert fake.called("sendMessage")  # it did reach Telegram: sending again could post twice


def _assert_no_token(text: str) -> None:
    assert TOKEN not in text
    assert SECRET_PART not in text


@pytest.mark.parametrize("failure", ["500", "429", "unreachable", "timeout", "401"])
async def test_the_token_never_leaks_into_errors_or_logs(
        server: tuple[FakeTelegram, str], fake: FakeTelegram, failure: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    base_url = server[1]
    # Two failures: one for the message, one for the typing indicator after it.
    if failure == "500":
        fake.fail_next(2, status=500)
    elif failure == "429":
        fake.fail_next(2, status=429, retry_after=3)
    elif failure == "unreachable":
        base_url = f"http://127.0.0.1:{free_port()}"
    elif failure == "timeout":
        fake.delay_next(2, seconds=1.0)
    token = TOKEN if failure != "401" else TOKEN[:-1] + "X"
    async with httpx.AsyncClient(timeout=0.2) as http:
        client = TelegramClient(base_url, Secret(token), http)
        with pytest.raises(PlatformError) as info:
            await client.send_message(CHAT, "hello")
        await client.reply_channel({"chat_id": CHAT}).typing()  # swallowed, logged at debug
    exc = info.value
    for text in (str(exc), repr(exc), exc.message,
                 "".join(traceback.format_exception(exc)), caplog.text,
                 *(record.getMessage() for record in caplog.records)):
        _assert_no_token(text)
        assert token not in text
    # httpx's exception (whose request holds the URL) must not be chained for printing.
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    assert any("typing indicator skipped" in r.getMessage() for r in caplog.records)


async def test_httpx_request_log_lines_are_redacted(client: TelegramClient,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await client.get_me()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/bot**********/getMe" in line for line in lines)
    _assert_no_token(caplog.text)


def test_utf16_length_is_how_telegram_counts(client: TelegramClient) -> None:
    channel = client.reply_channel({"chat_id": CHAT})
    assert channel.max_length == 4096
    assert channel.length("hello") == 5
    assert channel.length("é") == 1
    assert channel.length("日本") == 2
    assert channel.length("👍") == 2
    assert channel.length("👨‍👩‍👧") == 8  # three emoji joined by two zero-width joiners


async def test_the_fake_agrees_on_the_utf16_limit(client: TelegramClient) -> None:
    channel = client.reply_channel({"chat_id": CHAT})
    fits, too_long = "👍" * 2048, "👍" * 2048 + "!"
    assert (len(fits), channel.length(fits), channel.length(too_long)) == (2048, 4096, 4097)
    await channel.post(fits, 0)
    with pytest.raises(PlatformError) as info:
        await channel.post(too_long, 0)
    assert info.value.status == 400


async def test_the_reply_channel_posts_parts_and_edits(client: TelegramClient,
                                                       fake: FakeTelegram) -> None:
    channel: ReplyChannel = client.reply_channel(
        {"chat_id": GROUP, "message_thread_id": 42, "reply_to_message_id": 57})
    await channel.typing()
    first = await channel.post("part one", 0)
    second = await channel.post("part two", 1)
    await channel.edit(second, "part two, finished", 1)
    assert [c.method for c in fake.calls] == ["sendChatAction", "sendMessage", "sendMessage",
                                              "editMessageText"]
    typing, post0, post1, edit = (c.json for c in fake.calls)
    assert typing == {"chat_id": GROUP, "action": "typing", "message_thread_id": 42}
    assert post0["reply_parameters"] == {"message_id": 57, "allow_sending_without_reply": True}
    assert post0["message_thread_id"] == post1["message_thread_id"] == 42
    assert "reply_parameters" not in post1
    assert edit["message_id"] == int(second) != int(first)
    assert fake.messages[(GROUP, int(second))] == "part two, finished"


async def test_typing_failures_never_fail_the_answer(client: TelegramClient,
                                                     fake: FakeTelegram) -> None:
    fake.fail_next(status=429, retry_after=2)
    await client.reply_channel({"chat_id": CHAT}).typing()
    assert fake.called("sendChatAction")[0].status == 429


def test_reply_to_needs_a_chat(client: TelegramClient) -> None:
    with pytest.raises(ValueError):
        client.reply_channel({"message_thread_id": 4})
    channel = client.reply_channel({"chat_id": CHAT, "message_thread_id": None,
                                    "reply_to_message_id": None})
    assert isinstance(channel, TelegramReply)
    assert (channel.chat_id, channel.message_thread_id, channel.reply_to_message_id) == (
        CHAT, None, None)
