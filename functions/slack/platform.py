"""Slack, as the functions see it (functions/platform.py): Events API webhook, Web API replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.platform import Platform, Verifier
from functions.slack.app import slack_events
from functions.slack.threads import MARK_THREAD, MARKS_KEPT

if TYPE_CHECKING:
    import httpx

    from functions.messaging import Inbound, ReplyChannel
    from shared.settings import Settings


def _verifier(settings: Settings) -> Verifier:
    from functions.slack.verify import SignatureVerifier

    assert settings.slack_signing_secret is not None
    return SignatureVerifier(settings.slack_signing_secret.reveal())


def _channel(settings: Settings, http: httpx.AsyncClient, inbound: Inbound) -> ReplyChannel:
    from functions.slack.client import SlackClient

    assert settings.slack_bot_token is not None
    return SlackClient(settings.slack_api_url, settings.slack_bot_token, http).reply_channel(
        inbound.reply_to, streaming=settings.slack_streaming,
        mark=f"{inbound.platform}:{inbound.delivery_id}")  # ProgressiveReply's key


PLATFORM = Platform(
    name="slack",
    route="/slack/events",
    endpoint=slack_events,
    settings=("slack_signing_secret", "slack_bot_token"),
    optional=(),
    needs="SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN",
    verifier=_verifier,
    channel=_channel,
    on_accept=(MARK_THREAD,),  # the thread asked in: its replies are answered unmentioned
    kept=(MARKS_KEPT,),
)
