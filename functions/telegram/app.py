"""``POST /telegram/webhook``: check the secret header → parse → queue, or answer a command.

Telegram redelivers an update until it gets a 200, so every accepted update is recorded by its
``update_id`` and answered once. /start, /help, /reset and /forget are answered in the webhook's own
response (the Bot API lets a webhook reply with a method call), with no job and no extra call.
https://core.telegram.org/bots/api#making-requests-when-getting-updates
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from functions.messaging import FORGOT_YOU, PlatformError
from functions.telegram.payload import Command, Ignored, bot_id_from_token, classify
from functions.webhooks import Webhooks, ok, parse_body, webhooks

log = logging.getLogger(__name__)

HELP = ("Hi! I'm Charla, this team's own assistant: what you write stays on the team's "
        "servers. Ask me anything. In a group, mention me or reply to one of my messages.\n"
        "/reset forgets our conversation so far; /forget deletes everything I stored about you.")
FORGOTTEN = "Done: I forgot our conversation. Let's start again."


async def _username(hooks: Webhooks) -> str | None:
    """The bot's @username: from TELEGRAM_BOT_USERNAME, else asked once (getMe) and kept."""
    if hooks.settings.telegram_bot_username:
        return hooks.settings.telegram_bot_username.lstrip("@")
    if "telegram_username" not in hooks.cache:
        # Imported here: httpx is not on the webhook's cold path when the name is configured.
        from functions.telegram.client import TelegramClient

        assert hooks.settings.telegram_bot_token is not None
        client = TelegramClient(hooks.settings.telegram_api_url,
                                hooks.settings.telegram_bot_token, hooks.client())
        try:
            me = await client.get_me()
        except PlatformError as exc:
            # Without the name, groups answer only replies to the bot and /ask; try next time.
            log.warning("telegram getMe failed (%s); group mentions not recognised yet",
                        exc.message)
            return None
        hooks.cache["telegram_username"] = me.get("username") if isinstance(me, dict) else None
    name = hooks.cache["telegram_username"]
    return name if isinstance(name, str) else None


def _say(command: Command, text: str) -> dict[str, Any]:
    reply: dict[str, Any] = {"method": "sendMessage", "chat_id": command.chat_id, "text": text}
    if command.message_thread_id is not None:
        reply["message_thread_id"] = command.message_thread_id
    return reply


async def telegram_webhook(request: Request) -> Response:
    hooks = webhooks(request)
    raw = await hooks.delivery(request, "telegram")
    if isinstance(raw, Response):
        return raw  # off, or without the secret token
    assert hooks.settings.telegram_bot_token is not None  # on: checked when it was built
    event = classify(parse_body(raw),
                     bot_id=bot_id_from_token(hooks.settings.telegram_bot_token.reveal()),
                     bot_username=await _username(hooks))
    if isinstance(event, Ignored):
        log.debug("telegram update ignored: %s", event.reason)
        return ok({})
    if isinstance(event, Command):
        if event.name == "reset":
            await hooks.conversations().forget("telegram", event.conversation)
            return ok(_say(event, FORGOTTEN))
        if event.name == "forget":
            await hooks.forget_person("telegram", event.user)
            return ok(_say(event, FORGOT_YOU))
        return ok(_say(event, HELP))
    await hooks.accept(event.inbound)
    return ok({})
