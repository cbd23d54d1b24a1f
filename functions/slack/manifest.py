"""The Slack app manifest for a Charla deployment: paste it into "Create New App → From a
manifest" and the app comes with the right scopes, events and request URL.

Field names follow Slack's manifest reference: https://api.slack.com/reference/manifests
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

MAX_NAME_LENGTH = 35  # display_information.name

# Read mentions, DMs and thread replies in the conversations the bot is in; post answers.
BOT_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "im:history",
    "channels:history",
    "groups:history",
    "mpim:history",
)

# app_mention for "@Charla ..." anywhere; message.* for DMs and for replies in threads where
# Charla was asked (functions.slack.payload decides which to answer).
BOT_EVENTS = (
    "app_mention",
    "message.im",
    "message.channels",
    "message.groups",
    "message.mpim",
)


def events_url(url: str) -> str:
    """The Events API request URL for a deployment served at ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"Slack only delivers events to an https:// URL with a host name; got {url!r}"
        )
    return url.rstrip("/") + "/slack/events"


def manifest(url: str, *, name: str = "Charla") -> dict[str, Any]:
    """A manifest for an app named ``name`` whose functions are served at ``url``.

    Raises ValueError when ``url`` is not https or ``name`` does not fit Slack's limits.
    """
    request_url = events_url(url)
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"the app name must be 1 to {MAX_NAME_LENGTH} characters; got {name!r}")
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "The team's own assistant, answered by a model the team runs.",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            # The Messages tab is what lets people open a DM with the bot.
            "app_home": {
                "home_tab_enabled": False,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": {"request_url": request_url, "bot_events": list(BOT_EVENTS)},
            "org_deploy_enabled": False,
            # Events come over HTTP to the request URL, not over a socket the app opens.
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }
