"""The one client for Discord's HTTP API: interaction replies and command registration.

Replies go through the interaction's webhook, whose token is part of every URL:
https://discord.com/developers/docs/interactions/receiving-and-responding#followup-messages
The token lets its holder post as the bot for 15 minutes, so no error, log line or repr this
module makes carries a URL: transport errors are re-raised as :class:`PlatformError` with the
exception's class name only, ``from None``, and httpx's request log line is masked.

No automatic retries: a retried POST can post a follow-up twice. Callers decide from
``PlatformError.sent`` whether sending again is safe.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

import httpx

from functions.messaging import PlatformError, plain_sources, utf16_length
from shared.errors import ConfigError
from shared.logs import protect_http_logs
from shared.settings import Secret

MAX_CONTENT = 2000  # https://discord.com/developers/docs/resources/message#create-message
ORIGINAL = "@original"
DISCORD_EPOCH_MS = 1_420_070_400_000  # 2015-01-01, where snowflakes count from
TOKEN_LIFETIME_S = 15 * 60  # an interaction's token works this long after the interaction
# Discord asks every HTTP client for "DiscordBot ($url, $version)":
# https://discord.com/developers/docs/reference#user-agent
USER_AGENT = "DiscordBot (charla, 0.1.0)"
# Never let an answer ping @everyone, @here, a role or a user, whatever the model writes:
# https://discord.com/developers/docs/resources/message#allowed-mentions-object
NO_MENTIONS: dict[str, list[str]] = {"parse": []}

# Sent means "the request may have reached Discord": only failures before any byte left are not.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError,
             httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


def _form_errors(errors: Any, path: str = "") -> list[str]:
    """Flatten Discord's nested validation errors into ``field: message`` lines."""
    if not isinstance(errors, dict):
        return []
    found = [f"{path or 'body'}: {e.get('message')}" for e in errors.get("_errors", [])
             if isinstance(e, dict)]
    for key, value in errors.items():
        if key != "_errors":
            found += _form_errors(value, f"{path}.{key}" if path else str(key))
    return found


class DiscordClient:
    """Discord's REST API for one application, over an ``httpx.AsyncClient`` the app owns."""

    def __init__(self, base_url: str, application_id: str, bot_token: Secret | None,
                 http: httpx.AsyncClient) -> None:
        self._base_url = base_url.rstrip("/")
        self.application_id = application_id
        self._bot_token = bot_token
        self._http = http
        protect_http_logs()

    def __repr__(self) -> str:
        return f"DiscordClient(application_id={self.application_id!r})"

    async def edit_original(self, token: str, content: str) -> None:
        """Replace the text of the interaction's first answer (the deferred "thinking…")."""
        await self._webhook("edit the original answer", "PATCH", token,
                            f"/messages/{ORIGINAL}", _message(content))

    async def followup(self, token: str, content: str) -> str:
        """Post a follow-up message to the interaction; return its message id."""
        # wait=true makes Discord answer with the created message (and so its id) instead of
        # an empty 204: https://discord.com/developers/docs/resources/webhook#execute-webhook
        response = await self._webhook("post a follow-up", "POST", token, "",
                                       _message(content), params={"wait": "true"})
        message_id = _json(response).get("id")
        if not isinstance(message_id, str) or not message_id:
            # Discord did post it, so this must not be sent again.
            raise PlatformError("Discord posted a follow-up but returned no message id",
                                sent=True, status=response.status_code)
        return message_id

    async def edit_followup(self, token: str, message_id: str, content: str) -> None:
        """Replace the text of a follow-up message posted with :meth:`followup`."""
        await self._webhook("edit a follow-up", "PATCH", token,
                            f"/messages/{quote(message_id, safe='')}", _message(content))

    async def register_commands(self, commands: list[dict[str, Any]], *,
                                guild_id: str | None = None) -> list[dict[str, Any]]:
        """Replace the application's commands with ``commands`` (Discord's bulk overwrite).

        Global commands by default; per guild with ``guild_id`` (they show up at once there,
        which makes it the way to try changes). Needs the bot token.
        """
        if not self._bot_token:
            raise ConfigError("DISCORD_BOT_TOKEN is needed to register commands")
        path = f"/applications/{quote(self.application_id, safe='')}"
        if guild_id is not None:
            path += f"/guilds/{quote(guild_id, safe='')}"
        headers = {"Authorization": f"Bot {self._bot_token.reveal()}"}
        response = await self._request("register commands", "PUT", path + "/commands",
                                       commands, headers=headers)
        try:
            registered = response.json()
        except ValueError:
            registered = None
        if not isinstance(registered, list):
            raise PlatformError("Discord registered the commands but did not list them",
                                sent=True, status=response.status_code)
        return registered

    def reply_channel(self, reply_to: dict[str, Any], *,
                      interaction_id: str | None = None) -> DiscordReply:
        """The answer's channel for an ``Inbound.reply_to`` made by ``payload.classify``;
        ``interaction_id`` (the delivery id) says when its token expires."""
        token = reply_to.get("token")
        if not isinstance(token, str) or not token:
            raise ValueError("reply_to has no interaction token")
        if str(reply_to.get("application_id")) != self.application_id:
            raise ValueError("reply_to belongs to another Discord application")
        return DiscordReply(self, token, expires_at=token_expiry(interaction_id))

    async def _webhook(self, op: str, method: str, token: str, rest: str, body: dict[str, Any],
                       params: dict[str, str] | None = None) -> httpx.Response:
        if not token:
            raise ValueError("an interaction token is needed")
        path = (f"/webhooks/{quote(self.application_id, safe='')}/"
                f"{quote(token, safe='')}{rest}")
        return await self._request(op, method, path, body, params=params, secret=token)

    async def _request(self, op: str, method: str, path: str, body: Any, *,
                       params: dict[str, str] | None = None,
                       headers: dict[str, str] | None = None,
                       secret: str | None = None) -> httpx.Response:
        try:
            response = await self._http.request(
                method, self._base_url + path, json=body, params=params,
                headers={"User-Agent": USER_AGENT, **(headers or {})})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # str(exc) and the chained exception may hold the URL, hence the token: keep only
            # the kind of failure, and break the chain.
            sent = not isinstance(exc, _NOT_SENT)
            what = "no answer came" if sent else "could not reach Discord"
            raise PlatformError(f"Discord: could not {op}: {what} ({type(exc).__name__})",
                                sent=sent) from None
        if response.is_success:
            return response
        raise self._refusal(op, response, secret)

    def _refusal(self, op: str, response: httpx.Response, secret: str | None) -> PlatformError:
        """Discord's error body: ``{"message", "code"}``, or for a 429 ``{"retry_after"}``."""
        body = _json(response)
        status = response.status_code
        text = f"Discord: could not {op}: HTTP {status}"
        if isinstance(body.get("code"), int):
            text += f" (code {body['code']})"
        if isinstance(body.get("message"), str):
            text += f": {body['message'][:200]}"
        details = _form_errors(body.get("errors"))
        if details:
            text += f" [{'; '.join(details)[:300]}]"
        retry_after = _retry_after(body, response) if status == 429 else None
        # Discord does not echo secrets, but a message is text from outside: mask them anyway.
        for value in (secret, self._bot_token.reveal() if self._bot_token else None):
            if value:
                text = text.replace(value, "**********")
        return PlatformError(text, sent=False, status=status, retry_after=retry_after)


def token_expiry(interaction_id: str | None) -> float | None:
    """When an interaction's token stops working (Unix time): 15 minutes after the interaction
    was made, which its id (a snowflake) records in its top 42 bits, in milliseconds since
    Discord's epoch. https://docs.discord.com/developers/reference#snowflakes"""
    if interaction_id is None or not interaction_id.isdigit():
        return None
    created_ms = (int(interaction_id) >> 22) + DISCORD_EPOCH_MS
    return created_ms / 1000 + TOKEN_LIFETIME_S


class DiscordReply:
    """One interaction's answer: part 0 fills the deferred answer, later parts follow up.
    ``expires_at``: when the interaction's token, and with it the answer's way out, expires."""

    def __init__(self, client: DiscordClient, token: str, *,
                 expires_at: float | None = None) -> None:
        self.max_length = MAX_CONTENT
        self.expires_at = expires_at
        self._client = client
        self._token = token

    def __repr__(self) -> str:
        return f"DiscordReply(application_id={self._client.application_id!r})"

    def length(self, text: str) -> int:
        """UTF-16 code units: an emoji outside the BMP counts 2, never fewer than Discord."""
        return utf16_length(text)

    async def typing(self) -> None:
        """Nothing to do: the deferred answer already shows "<bot> is thinking…"."""

    async def post(self, text: str, part: int) -> str:
        """Part 0 edits the deferred answer (``"@original"``); later parts are follow-ups."""
        if part == 0:
            await self._client.edit_original(self._token, text)
            return ORIGINAL
        return await self._client.followup(self._token, text)

    def fixed_ref(self, part: int) -> str | None:
        """Part 0 is the deferred answer, there from the start: filling it twice is an edit."""
        return ORIGINAL if part == 0 else None

    async def edit(self, ref: str, text: str, part: int) -> None:
        """Replace the text of the deferred answer or of one follow-up."""
        if ref == ORIGINAL:
            await self._client.edit_original(self._token, text)
        else:
            await self._client.edit_followup(self._token, ref, text)

    def sources(self, citations: list[str]) -> str:
        """A numbered "Sources:" footer (the label in bold)."""
        return plain_sources(citations, ("**", "**"))


def _message(content: str) -> dict[str, Any]:
    return {"content": content, "allowed_mentions": NO_MENTIONS}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(body: dict[str, Any], response: httpx.Response) -> float | None:
    """Seconds to wait: the body's ``retry_after`` (a float) is finer than the header's."""
    candidates: tuple[Any, ...] = (body.get("retry_after"), response.headers.get("retry-after"))
    for value in candidates:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
