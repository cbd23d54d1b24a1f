"""The Discord client against a fake Discord on loopback: what it sends and how it fails."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from functions.discord.client import DiscordClient
from functions.discord.commands import COMMANDS
from functions.discord.payload import Ask, classify
from functions.messaging import PlatformError
from shared.errors import ConfigError
from shared.settings import Secret
from tests.conftest import ServerThread, free_port
from tests.fakes.discord_api import Failure, FakeDiscord
from tests.functions.discord.events import event

APP = "1187654321098765432"
BOT_TOKEN = "MTE4NzY1NDMyMTA5ODc2NTQzMg.GhJkLm.bot-token-made-up-for-tests_0123456789"
GUILD = "1098765432109876543"
TIMEOUT_S = 1.0
INJECTED: dict[str, Failure] = {"429": "429", "500": "500", "slow": "slow", "drop": "drop"}


@pytest.fixture
def server() -> Iterator[tuple[FakeDiscord, str]]:
    fake = FakeDiscord(APP, BOT_TOKEN)
    fake.delay_s = TIMEOUT_S + 1.0
    thread = ServerThread(fake.app).start()
    yield fake, thread.url
    thread.stop()


@pytest.fixture
def fake(server: tuple[FakeDiscord, str]) -> FakeDiscord:
    return server[0]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def client(server: tuple[FakeDiscord, str], http: httpx.AsyncClient) -> DiscordClient:
    return DiscordClient(server[1] + "/", APP, Secret(BOT_TOKEN), http)


def deferred(fake: FakeDiscord, sample: str = "ask_guild") -> dict[str, Any]:
    """The ``reply_to`` of an /ask that the webhook answered with a deferred response."""
    result = classify(event(sample))
    assert isinstance(result, Ask)
    fake.open_interaction(result.inbound.reply_to["token"])
    return result.inbound.reply_to


async def test_part_0_edits_the_deferred_answer(fake: FakeDiscord,
                                                client: DiscordClient) -> None:
    reply_to = deferred(fake)
    token = reply_to["token"]
    reply = client.reply_channel(reply_to)
    await reply.typing()  # nothing to send: Discord already shows "thinking…"
    assert await reply.post("Weekly, Monday to Monday.", 0) == "@original"
    assert fake.original(token) == "Weekly, Monday to Monday."
    [call] = fake.calls
    assert (call.method, call.path) == ("PATCH", f"/webhooks/{APP}/{token}/messages/@original")
    assert call.json == {"content": "Weekly, Monday to Monday.",
                         "allowed_mentions": {"parse": []}}
    assert "authorization" not in call.headers  # the token in the URL is the credential
    assert call.headers["user-agent"].startswith("DiscordBot (")
    await reply.edit("@original", "Weekly, Monday to Monday (UTC).", 0)
    assert fake.original(token) == "Weekly, Monday to Monday (UTC)."
    assert fake.followups(token) == []


async def test_later_parts_are_follow_ups_with_their_own_ids(fake: FakeDiscord,
                                                             client: DiscordClient) -> None:
    reply_to = deferred(fake, "ask_dm")
    token = reply_to["token"]
    reply = client.reply_channel(reply_to)
    refs = [await reply.post(text, part) for part, text in enumerate(["one", "two", "three"])]
    assert refs[0] == "@original"
    assert len(set(refs[1:])) == 2 and all(ref.isdigit() for ref in refs[1:])
    await reply.edit(refs[1], "two, edited", 1)
    await reply.edit(refs[2], "three, edited", 2)
    assert fake.original(token) == "one"
    assert fake.followups(token) == ["two, edited", "three, edited"]
    posts = [c for c in fake.calls if c.method == "POST"]
    assert [c.path for c in posts] == [f"/webhooks/{APP}/{token}"] * 2
    assert all(c.query == {"wait": "true"} for c in posts)
    edits = [c.path for c in fake.calls if c.method == "PATCH"][1:]
    assert edits == [f"/webhooks/{APP}/{token}/messages/{ref}" for ref in refs[1:]]


async def test_no_message_can_ping_anyone(fake: FakeDiscord, client: DiscordClient) -> None:
    reply = client.reply_channel(deferred(fake))
    ref = await reply.post("@everyone <@&1098765432109876544> <@803456789012345678>", 0)
    follow = await reply.post("@here again", 1)
    await reply.edit(ref, "@everyone edited", 0)
    await reply.edit(follow, "@here edited", 1)
    assert len(fake.calls) == 4
    assert all(c.json["allowed_mentions"] == {"parse": []} for c in fake.calls)


async def test_length_counts_utf16_units_and_2000_fit(fake: FakeDiscord,
                                                      client: DiscordClient) -> None:
    reply_to = deferred(fake)
    reply = client.reply_channel(reply_to)
    assert reply.max_length == 2000
    assert reply.length("abc") == 3
    assert reply.length("ñ日") == 2
    assert reply.length("🚀") == 2 and reply.length("👩‍💻") == 5
    text = "🚀" * 1000
    assert reply.length(text) == reply.max_length
    await reply.post(text, 0)
    assert fake.original(reply_to["token"]) == text
    with pytest.raises(PlatformError) as caught:
        await reply.post(text + "!", 1)
    assert (caught.value.status, caught.value.sent) == (400, False)
    assert "code 50035" in caught.value.message
    assert "content: Must be 2000 or fewer in length." in caught.value.message


@pytest.mark.parametrize("guild_id", [None, GUILD])
async def test_register_commands(fake: FakeDiscord, client: DiscordClient,
                                 guild_id: str | None) -> None:
    registered = await client.register_commands(COMMANDS, guild_id=guild_id)
    assert [c["name"] for c in registered] == ["ask", "reset", "forget"]
    assert all(c["id"].isdigit() and c["application_id"] == APP for c in registered)
    assert fake.commands[guild_id] == registered
    [call] = fake.calls
    where = f"/guilds/{guild_id}" if guild_id else ""
    assert (call.method, call.path) == ("PUT", f"/applications/{APP}{where}/commands")
    assert call.headers["authorization"] == f"Bot {BOT_TOKEN}"
    assert call.json == COMMANDS


async def test_register_needs_the_bot_token(server: tuple[FakeDiscord, str],
                                            http: httpx.AsyncClient) -> None:
    fake, url = server
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        await DiscordClient(url, APP, None, http).register_commands(COMMANDS)
    assert fake.calls == []
    wrong = DiscordClient(url, APP, Secret("not-the-bot-token"), http)
    with pytest.raises(PlatformError) as caught:
        await wrong.register_commands(COMMANDS)
    assert (caught.value.status, caught.value.sent) == (401, False)
    assert "not-the-bot-token" not in str(caught.value)
    assert fake.commands == {}


async def test_an_invalid_command_is_refused_with_discords_details(
        client: DiscordClient) -> None:
    with pytest.raises(PlatformError) as caught:
        await client.register_commands([{"name": "Ask Me", "description": ""}])
    assert caught.value.status == 400
    assert "0.name: Command name is invalid" in caught.value.message
    assert "0.description: Must be between 1 and 100 in length." in caught.value.message


async def test_rate_limit_carries_discords_retry_after(fake: FakeDiscord,
                                                       client: DiscordClient) -> None:
    reply = client.reply_channel(deferred(fake))
    fake.fail_next(1, "429", retry_after=2.25)
    with pytest.raises(PlatformError) as caught:
        await reply.post("hello", 0)
    assert (caught.value.status, caught.value.sent, caught.value.retry_after) == (429, False, 2.25)
    assert "You are being rate limited." in caught.value.message
    assert await reply.post("hello", 0) == "@original"  # the next call goes through


@pytest.mark.parametrize(("kind", "status", "sent"), [("500", 500, False), ("slow", None, True),
                                                      ("drop", None, True)])
async def test_failures_say_whether_the_message_may_exist(fake: FakeDiscord,
                                                          client: DiscordClient, kind: Failure,
                                                          status: int | None,
                                                          sent: bool) -> None:
    reply_to = deferred(fake)
    reply = client.reply_channel(reply_to)
    fake.fail_next(1, kind)
    with pytest.raises(PlatformError) as caught:
        await reply.post("part one", 1)
    assert (caught.value.status, caught.value.sent, caught.value.retry_after) == (status, sent,
                                                                                   None)
    # sent=True is no guess: the fake did post it, so posting again would show it twice.
    assert fake.followups(reply_to["token"]) == (["part one"] if sent else [])


async def test_an_unknown_or_expired_token_is_discords_404(fake: FakeDiscord,
                                                           client: DiscordClient) -> None:
    reply = client.reply_channel({"application_id": APP, "token": "expired-interaction-token"})
    with pytest.raises(PlatformError) as caught:
        await reply.post("late answer", 0)
    assert (caught.value.status, caught.value.sent) == (404, False)
    assert "code 10015" in caught.value.message and "Unknown Webhook" in caught.value.message
    assert "expired-interaction-token" not in caught.value.message


async def test_an_unreachable_discord_is_not_sent(http: httpx.AsyncClient) -> None:
    client = DiscordClient(f"http://127.0.0.1:{free_port()}", APP, None, http)
    with pytest.raises(PlatformError) as caught:
        await client.followup("some-token", "hello")
    assert (caught.value.sent, caught.value.status) == (False, None)


def test_reply_channel_checks_reply_to(client: DiscordClient) -> None:
    with pytest.raises(ValueError, match="another Discord application"):
        client.reply_channel({"application_id": "1", "token": "t"})
    with pytest.raises(ValueError, match="no interaction token"):
        client.reply_channel({"application_id": APP})
    reply = client.reply_channel({"application_id": APP, "token": "secret-interaction-token"})
    assert "secret-interaction-token" not in repr(reply)
    assert BOT_TOKEN not in repr(client)


@pytest.mark.parametrize("failure", ["429", "500", "slow", "drop", "unreachable", "bad token",
                                     "validation", "ok"])
async def test_secrets_stay_out_of_errors_and_logs(server: tuple[FakeDiscord, str],
                                                   http: httpx.AsyncClient,
                                                   caplog: pytest.LogCaptureFixture,
                                                   failure: str) -> None:
    caplog.set_level(logging.DEBUG)
    fake, url = server
    reply_to = deferred(fake)
    token = reply_to["token"]
    if failure == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
    elif failure == "bad token":
        token = token[::-1]
    elif failure in INJECTED:
        fake.fail_next(1, INJECTED[failure])
    client = DiscordClient(url, APP, Secret(BOT_TOKEN), http)
    reply = client.reply_channel({"application_id": APP, "token": token})
    text = "x" * 2001 if failure == "validation" else "an answer"
    errors: list[PlatformError] = []
    for attempt in (reply.post(text, 0), reply.post(text, 1),
                    client.register_commands(COMMANDS)):
        try:
            await attempt
        except PlatformError as exc:
            errors.append(exc)
    if failure != "ok":
        assert errors, "the failure was not provoked"
    for error in errors:
        # No chained httpx error (its text and its request hold the URL, hence the token).
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__
        shown = str(error) + repr(error) + "".join(traceback.format_exception(error))
        for secret in (token, BOT_TOKEN):
            assert secret not in shown
    assert caplog.records, "nothing was logged, so the check below would prove nothing"
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in (token, BOT_TOKEN):
        assert secret not in logged
    if failure != "unreachable":
        assert f"/webhooks/{APP}/**********" in logged  # httpx's line, masked
