"""``POST /discord/interactions``: verify Ed25519 → PING, /ask (deferred, queued), /reset.

Discord wants an answer within 3 seconds: /ask gets a deferred response at once (the user sees
"thinking…") and the worker edits it with the answer through the interaction's webhook, which
lives 15 minutes. Anything that fails the signature check is refused with 401, as Discord's
own endpoint verification requires.
https://discord.com/developers/docs/interactions/receiving-and-responding
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from functions.discord.payload import Ask, Forget, Ignored, Ping, classify
from functions.messaging import FORGOT_YOU
from functions.webhooks import ok, parse_body, webhooks

log = logging.getLogger(__name__)

PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
EPHEMERAL = 1 << 6

FORGOTTEN = "Done: I forgot our conversation in this channel."
UNKNOWN = "I don't know that command. Try /ask, /reset or /forget."


def _private(text: str) -> dict[str, Any]:
    """A message only the person who asked can see."""
    return {"type": CHANNEL_MESSAGE, "data": {"content": text, "flags": EPHEMERAL,
                                              "allowed_mentions": {"parse": []}}}


async def discord_interactions(request: Request) -> Response:
    hooks = webhooks(request)
    raw = await hooks.delivery(request, "discord")
    if isinstance(raw, Response):
        return raw  # off, or not from Discord
    event = classify(parse_body(raw))
    if isinstance(event, Ping):
        return ok({"type": PONG})
    if isinstance(event, Ignored):
        log.debug("discord interaction ignored: %s", event.reason)
        return ok(_private(UNKNOWN))
    if isinstance(event, Ask):
        await hooks.accept(event.inbound)
        return ok({"type": DEFERRED_CHANNEL_MESSAGE})
    if isinstance(event, Forget):
        await hooks.forget_person("discord", event.user)
        return ok(_private(FORGOT_YOU))
    await hooks.conversations().forget("discord", event.conversation)
    return ok(_private(FORGOTTEN))
