"""The chat platforms that are switched on, each with its one outbound client.

A platform is on when its secrets are set (shared/settings.py); the rest stay off, their
webhook routes answer 404, and the worker refuses their jobs. Clients share one HTTP client,
created once per process.
"""

from __future__ import annotations

import logging

import httpx

from functions.messaging import Inbound, ReplyChannel
from shared.settings import Settings

log = logging.getLogger(__name__)

PLATFORMS = ("slack", "telegram", "discord")


def enabled(settings: Settings) -> dict[str, bool]:
    return {"slack": settings.slack_enabled, "telegram": settings.telegram_enabled,
            "discord": settings.discord_enabled}


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client for platform APIs: bounded time, no automatic retries (a retried POST
    could post a message twice; functions/worker/reply.py retries safely instead)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.platform_timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
    )


class Platforms:
    """Outbound clients of the enabled platforms, built lazily on first use."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.on = enabled(settings)

    def channel(self, inbound: Inbound) -> ReplyChannel:
        """Where the answer to ``inbound`` goes."""
        s = self.settings
        if not self.on.get(inbound.platform):
            raise LookupError(f"platform {inbound.platform!r} is not configured")
        if inbound.platform == "slack":
            from functions.slack.client import SlackClient

            assert s.slack_bot_token is not None
            return SlackClient(s.slack_api_url, s.slack_bot_token, self.http).reply_channel(
                inbound.reply_to, streaming=s.slack_streaming,
                mark=f"{inbound.platform}:{inbound.delivery_id}")  # ProgressiveReply's key
        if inbound.platform == "telegram":
            from functions.telegram.client import TelegramClient

            assert s.telegram_bot_token is not None
            return TelegramClient(s.telegram_api_url, s.telegram_bot_token,
                                  self.http).reply_channel(inbound.reply_to,
                                                           streaming=s.telegram_streaming)
        from functions.discord.client import DiscordClient

        assert s.discord_application_id is not None
        return DiscordClient(s.discord_api_url, s.discord_application_id, s.discord_bot_token,
                             self.http).reply_channel(inbound.reply_to,
                                                      interaction_id=inbound.delivery_id)

    async def close(self) -> None:
        await self.http.aclose()
