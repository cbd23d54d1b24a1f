"""``charla slack|telegram|discord ...``: set a platform up without clicking around.

- ``charla slack manifest --url https://…`` prints the Slack app manifest to paste into
  "Create an app → From a manifest" (scopes, events, bot user, request URL).
- ``charla telegram set-webhook https://…`` registers the webhook with the secret token, the
  updates Charla reads and a connection limit; ``charla telegram info`` shows its status.
- ``charla discord register [--guild ID]`` registers /ask and /reset (globally, or for one
  guild, where changes show at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from functions.messaging import PlatformError
from shared.errors import ConfigError
from shared.settings import Settings

# What Charla reads from Telegram; everything else is never sent to us.
TELEGRAM_UPDATES = ["message"]


def _run(work: Callable[[httpx.AsyncClient], Awaitable[int]]) -> int:
    async def main() -> int:
        async with httpx.AsyncClient(timeout=15) as http:
            try:
                return await work(http)
            except PlatformError as exc:
                print(f"charla: {exc.message}", file=sys.stderr)
                return 1

    return asyncio.run(main())


def slack_manifest(args: argparse.Namespace) -> int:
    from functions.slack.manifest import manifest

    try:
        print(json.dumps(manifest(args.url, name=args.name), indent=2))
    except ValueError as exc:
        print(f"charla: {exc}", file=sys.stderr)
        return 2
    return 0


def _telegram(settings: Settings, http: httpx.AsyncClient) -> Any:
    from functions.telegram.client import TelegramClient

    if settings.telegram_bot_token is None:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set (BotFather gives it to you)")
    return TelegramClient(settings.telegram_api_url, settings.telegram_bot_token, http)


def telegram_set_webhook(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.telegram_secret_token is None:
        raise ConfigError("TELEGRAM_SECRET_TOKEN is not set: choose 1-256 characters of "
                          "A-Z, a-z, 0-9, _ and -, and give the webhook the same")
    url = args.url.rstrip("/")
    if not url.startswith("https://"):
        print("charla: Telegram only calls https:// webhooks", file=sys.stderr)
        return 2
    if not url.endswith("/telegram/webhook"):
        url += "/telegram/webhook"

    async def work(http: httpx.AsyncClient) -> int:
        await _telegram(settings, http).set_webhook(
            url, secret_token=settings.telegram_secret_token, allowed_updates=TELEGRAM_UPDATES,
            max_connections=args.max_connections, drop_pending_updates=args.drop_pending)
        print(f"webhook set: {url} (updates: {', '.join(TELEGRAM_UPDATES)}, "
              f"at most {args.max_connections} connections)")
        return 0

    return _run(work)


def telegram_info(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    async def work(http: httpx.AsyncClient) -> int:
        info = await _telegram(settings, http).get_webhook_info()
        for key in ("url", "pending_update_count", "max_connections", "allowed_updates",
                    "last_error_date", "last_error_message", "ip_address"):
            if key in info:
                print(f"{key}: {info[key]}")
        return 0

    return _run(work)


def discord_register(args: argparse.Namespace) -> int:
    from functions.discord.client import DiscordClient
    from functions.discord.commands import COMMANDS

    settings = Settings.from_env()
    if not settings.discord_application_id or settings.discord_bot_token is None:
        raise ConfigError("set DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN (the developer "
                          "portal shows both)")
    app_id = settings.discord_application_id

    async def work(http: httpx.AsyncClient) -> int:
        client = DiscordClient(settings.discord_api_url, app_id, settings.discord_bot_token, http)
        done = await client.register_commands(COMMANDS, guild_id=args.guild)
        where = f"guild {args.guild}" if args.guild else "every server and DM (global)"
        names = ", ".join("/" + str(c.get("name")) for c in done)
        print(f"registered {names} for {where}")
        return 0

    return _run(work)


def add_commands(sub: Any) -> None:
    """The ``slack``, ``telegram`` and ``discord`` command groups."""
    slack = sub.add_parser("slack", help="Slack set-up").add_subparsers(dest="action",
                                                                         required=True)
    p = slack.add_parser("manifest", help="print the Slack app manifest")
    p.add_argument("--url", required=True, help="the public https:// URL of this Charla")
    p.add_argument("--name", default="Charla", help="the app's name in Slack")
    p.set_defaults(func=slack_manifest)

    telegram = sub.add_parser("telegram", help="Telegram set-up").add_subparsers(
        dest="action", required=True)
    p = telegram.add_parser("set-webhook", help="register this Charla's webhook with Telegram")
    p.add_argument("url", help="the public https:// URL of this Charla")
    p.add_argument("--max-connections", type=int, default=40,
                   help="most simultaneous deliveries (1-100)")
    p.add_argument("--drop-pending", action="store_true",
                   help="discard updates that waited while no webhook was set")
    p.set_defaults(func=telegram_set_webhook)
    p = telegram.add_parser("info", help="show the webhook's status as Telegram sees it")
    p.set_defaults(func=telegram_info)

    discord = sub.add_parser("discord", help="Discord set-up").add_subparsers(dest="action",
                                                                             required=True)
    p = discord.add_parser("register", help="register /ask and /reset")
    p.add_argument("--guild", help="register for this guild only (shows at once)")
    p.set_defaults(func=discord_register)
