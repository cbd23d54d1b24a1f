"""Discord, as the functions see it (functions/platform.py): the Interactions endpoint, and
the interaction's webhook for answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.discord.app import discord_interactions
from functions.platform import Platform, Verifier

if TYPE_CHECKING:
    import httpx

    from functions.messaging import Inbound, ReplyChannel
    from shared.settings import Settings


def _verifier(settings: Settings) -> Verifier:
    from functions.discord.verify import SignatureVerifier

    assert settings.discord_public_key is not None
    return SignatureVerifier(settings.discord_public_key)


def _channel(settings: Settings, http: httpx.AsyncClient, inbound: Inbound) -> ReplyChannel:
    from functions.discord.client import DiscordClient

    assert settings.discord_application_id is not None
    return DiscordClient(settings.discord_api_url, settings.discord_application_id,
                         settings.discord_bot_token, http).reply_channel(
        inbound.reply_to, interaction_id=inbound.delivery_id)


PLATFORM = Platform(
    name="discord",
    route="/discord/interactions",
    endpoint=discord_interactions,
    settings=("discord_public_key", "discord_application_id"),
    optional=("discord_bot_token",),
    needs="DISCORD_PUBLIC_KEY and DISCORD_APPLICATION_ID",
    verifier=_verifier,
    channel=_channel,
)
