"""``charla slack manifest``, ``charla telegram set-webhook|info``, ``charla discord register``,
run as a user would, against local fakes of Telegram's and Discord's APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from functions.discord.commands import COMMANDS
from tests.charla.test_cli import charla
from tests.conftest import ServerThread
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram

TG_TOKEN = "7000000003:AAH-setup-test-token-0123456789abcdefg"
TG_SECRET = "setup_secret-0123456789"
APP, DC_TOKEN = "1300000000000000099", "setup-bot-token"


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[FakeTelegram, dict[str, str]]]:
    fake = FakeTelegram(TG_TOKEN)
    server = ServerThread(fake.app).start()
    yield fake, {"TELEGRAM_BOT_TOKEN": TG_TOKEN, "TELEGRAM_SECRET_TOKEN": TG_SECRET,
                 "TELEGRAM_API_URL": server.url}
    server.stop()


@pytest.fixture(scope="module")
def discord() -> Iterator[tuple[FakeDiscord, dict[str, str]]]:
    fake = FakeDiscord(APP, DC_TOKEN)
    server = ServerThread(fake.app).start()
    yield fake, {"DISCORD_APPLICATION_ID": APP, "DISCORD_BOT_TOKEN": DC_TOKEN,
                 "DISCORD_API_URL": server.url}
    server.stop()


def test_slack_manifest_points_slack_at_our_events_route() -> None:
    done = charla("slack", "manifest", "--url", "https://chat.example.org/", env={})
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    events = manifest["settings"]["event_subscriptions"]
    assert events["request_url"] == "https://chat.example.org/slack/events"
    assert {"app_mention", "message.im"} <= set(events["bot_events"])
    assert "chat:write" in manifest["oauth_config"]["scopes"]["bot"]


def test_slack_manifest_refuses_plain_http() -> None:
    done = charla("slack", "manifest", "--url", "http://chat.example.org", env={})
    assert done.returncode == 2
    assert "https" in done.stderr


def test_telegram_set_webhook_sends_secret_updates_and_limit(
    telegram: tuple[FakeTelegram, dict[str, str]]
) -> None:
    fake, env = telegram
    done = charla("telegram", "set-webhook", "https://chat.example.org",
                  "--max-connections", "20", env=env)
    assert done.returncode == 0, done.stderr
    [call] = fake.called("setWebhook")
    assert call.json["url"] == "https://chat.example.org/telegram/webhook"
    assert call.json["secret_token"] == TG_SECRET
    assert call.json["allowed_updates"] == ["message"]
    assert call.json["max_connections"] == 20
    assert TG_TOKEN not in done.stdout + done.stderr

    info = charla("telegram", "info", env=env)
    assert info.returncode == 0, info.stderr
    assert "url: https://chat.example.org/telegram/webhook" in info.stdout


def test_telegram_errors_are_short_and_keep_the_token_out(
    telegram: tuple[FakeTelegram, dict[str, str]]
) -> None:
    _, env = telegram
    done = charla("telegram", "info", env={**env, "TELEGRAM_API_URL": "http://127.0.0.1:1"})
    assert done.returncode == 1
    assert "could not connect" in done.stderr
    assert TG_TOKEN not in done.stderr and "Traceback" not in done.stderr
    unset = charla("telegram", "set-webhook", "https://x.example", env={
        **env, "TELEGRAM_SECRET_TOKEN": ""})
    assert unset.returncode == 2 and "TELEGRAM_SECRET_TOKEN" in unset.stderr


@pytest.mark.parametrize("guild", [None, "1098765432109876543"])
def test_discord_register_puts_ask_and_reset(discord: tuple[FakeDiscord, dict[str, str]],
                                             guild: str | None) -> None:
    fake, env = discord
    args = ["discord", "register", *(["--guild", guild] if guild else [])]
    done = charla(*args, env=env)
    assert done.returncode == 0, done.stderr
    assert "/ask" in done.stdout and "/reset" in done.stdout
    assert [c["name"] for c in fake.commands[guild]] == [c["name"] for c in COMMANDS]
    assert DC_TOKEN not in done.stdout + done.stderr
