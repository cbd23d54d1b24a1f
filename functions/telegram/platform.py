"""Telegram, as the functions see it (functions/platform.py): the Bot API's webhook and
methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.platform import Platform, Verifier
from functions.telegram.app import telegram_webhook
from shared.errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from functions.messaging import Inbound, ReplyChannel
    from shared.settings import Settings


def _verifier(settings: Settings) -> Verifier:
    from functions.telegram.payload import bot_id_from_token
    from functions.telegram.verify import SecretTokenVerifier

    assert settings.telegram_bot_token is not None
    assert settings.telegram_secret_token is not None
    try:
        bot_id_from_token(settings.telegram_bot_token.reveal())
    except ValueError:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not a bot token (123456:ABC...)") from None
    return SecretTokenVerifier(settings.telegram_secret_token.reveal())


def _channel(settings: Settings, http: httpx.AsyncClient, inbound: Inbound) -> ReplyChannel:
    from functions.telegram.client import TelegramClient

    assert settings.telegram_bot_token is not None
    return TelegramClient(settings.telegram_api_url, settings.telegram_bot_token,
                          http).reply_channel(inbound.reply_to,
                                              streaming=settings.telegram_streaming)


PLATFORM = Platform(
    name="telegram",
    route="/telegram/webhook",
    endpoint=telegram_webhook,
    settings=("telegram_bot_token", "telegram_secret_token"),
    optional=(),
    needs="TELEGRAM_BOT_TOKEN and TELEGRAM_SECRET_TOKEN",
    verifier=_verifier,
    channel=_channel,
)
