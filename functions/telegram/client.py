"""The one small client for the Telegram Bot API, and the reply channel built on it.

Telegram puts the bot token in every URL (``{base}/bot{token}/{method}``), so the URL itself is
a secret: transport errors are re-raised as :class:`PlatformError` with a token-free message and
``from None``, and httpx's own request log line gets the token redacted. Nothing is retried
here: a retried ``sendMessage`` can post twice, so the caller decides from ``PlatformError.sent``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import httpx

from functions.messaging import PlatformError, Refusals, plain_sources, utf16_length
from functions.telegram.verify import valid_secret
from shared.logs import protect_http_logs
from shared.settings import Secret

log = logging.getLogger(__name__)

MAX_LENGTH = 4096  # sendMessage: "1-4096 characters after entities parsing"

# How long a chat whose draft Telegram refused gets no drafts (the answer is posted and edited).
DRAFT_REFUSAL_S = 600.0
draft_refusals = Refusals("a Telegram draft", DRAFT_REFUSAL_S)  # by chat id

# Raised before any byte of the request could reach Telegram: safe to send again.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
    httpx.ProxyError, httpx.InvalidURL,
)


def _error(method: str, response: httpx.Response) -> PlatformError:
    """The Bot API's error body, ``{"ok": false, "error_code", "description", "parameters"}``."""
    status, description, retry_after = response.status_code, response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error_code"), int):
            status = body["error_code"]
        description = str(body.get("description") or description)[:300]
        parameters = body.get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
            retry_after = float(parameters["retry_after"])
    if retry_after is None and status == 429:
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
    return PlatformError(f"Telegram {method} failed: {status} {description}",
                         sent=False, status=status, retry_after=retry_after)


class TelegramClient:
    """Bot API methods as plain async calls; every failure is a :class:`PlatformError`."""

    def __init__(self, base_url: str, token: Secret, http: httpx.AsyncClient) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._http = http
        protect_http_logs()

    async def call(self, method: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` as JSON to Bot API ``method``; the ``result`` of a successful answer."""
        url = f"{self._base_url}/bot{self._token.reveal()}/{method}"
        try:
            response = await self._http.post(url, json=body or {})
        except _NOT_SENT as exc:
            # The message names the exception type only: httpx's text can carry the URL.
            raise PlatformError(f"Telegram {method}: could not connect ({type(exc).__name__})",
                                sent=False) from None
        except httpx.HTTPError as exc:
            raise PlatformError(
                f"Telegram {method}: no answer ({type(exc).__name__}); it may have been applied",
                sent=True) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
            return data.get("result")
        raise _error(method, response)

    async def send_message(self, chat_id: int, text: str, *, message_thread_id: int | None = None,
                           reply_to_message_id: int | None = None) -> int:
        """Send plain ``text`` (no parse mode, no link preview); the new message's id."""
        body: dict[str, Any] = {"chat_id": chat_id, "text": text,
                                "link_preview_options": {"is_disabled": True}}
        if message_thread_id is not None:
            body["message_thread_id"] = message_thread_id
        if reply_to_message_id is not None:
            # If the question was deleted meanwhile, the answer still goes out, unattached.
            body["reply_parameters"] = {"message_id": reply_to_message_id,
                                        "allow_sending_without_reply": True}
        result = await self.call("sendMessage", body)
        if not isinstance(result, dict) or not isinstance(result.get("message_id"), int):
            raise PlatformError("Telegram sendMessage: answer without a message_id", sent=True)
        message_id: int = result["message_id"]
        return message_id

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> None:
        """Replace a sent message's text; unchanged text counts as done."""
        body = {"chat_id": chat_id, "message_id": message_id, "text": text,
                "link_preview_options": {"is_disabled": True}}
        try:
            await self.call("editMessageText", body)
        except PlatformError as exc:
            # Telegram refuses an edit to identical text with a 400; the message already
            # says what we wanted it to say.
            if exc.status == 400 and "message is not modified" in exc.message:
                return
            raise

    async def send_message_draft(self, chat_id: int, draft_id: int, text: str, *,
                                 message_thread_id: int | None = None) -> None:
        """Show ``text`` as the answer being written in a private chat: an ephemeral draft
        (the same ``draft_id`` updates it, animated) that a sendMessage replaces.
        https://core.telegram.org/bots/api#sendmessagedraft"""
        body: dict[str, Any] = {"chat_id": chat_id, "draft_id": draft_id, "text": text}
        if message_thread_id is not None:
            body["message_thread_id"] = message_thread_id
        await self.call("sendMessageDraft", body)

    async def send_chat_action(self, chat_id: int, action: str = "typing", *,
                               message_thread_id: int | None = None) -> None:
        """Show ``action`` (e.g. "typing") in the chat for about five seconds."""
        body: dict[str, Any] = {"chat_id": chat_id, "action": action}
        if message_thread_id is not None:
            body["message_thread_id"] = message_thread_id
        await self.call("sendChatAction", body)

    async def get_me(self) -> dict[str, Any]:
        """The bot's own User object (``id``, ``username``, ...)."""
        result = await self.call("getMe")
        if not isinstance(result, dict):
            raise PlatformError("Telegram getMe: unexpected answer")
        return result

    async def set_webhook(self, url: str, *, secret_token: Secret | str,
                          allowed_updates: list[str], max_connections: int,
                          drop_pending_updates: bool = False) -> None:
        """Have Telegram deliver ``allowed_updates`` to ``url`` with ``secret_token``."""
        secret = secret_token.reveal() if isinstance(secret_token, Secret) else secret_token
        if not valid_secret(secret):
            raise ValueError("the webhook secret token must be 1-256 of A-Z a-z 0-9 _ -")
        await self.call("setWebhook", {
            "url": url, "secret_token": secret, "allowed_updates": allowed_updates,
            "max_connections": max_connections, "drop_pending_updates": drop_pending_updates,
        })

    async def get_webhook_info(self) -> dict[str, Any]:
        """The webhook's state: ``url``, ``pending_update_count``, ``last_error_message``..."""
        result = await self.call("getWebhookInfo")
        if not isinstance(result, dict):
            raise PlatformError("Telegram getWebhookInfo: unexpected answer")
        return result

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        """Stop webhook deliveries."""
        await self.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates})

    def reply_channel(self, reply_to: dict[str, Any], *,
                      streaming: bool = True) -> TelegramReply:
        """The chat (and forum topic) an answer goes to, from an Inbound's ``reply_to``;
        ``streaming``: whether a private chat sees the answer as a draft while it is written."""
        chat_id, thread = reply_to.get("chat_id"), reply_to.get("message_thread_id")
        question = reply_to.get("reply_to_message_id")
        if not isinstance(chat_id, int):
            raise ValueError("Telegram reply_to needs an integer chat_id")
        return TelegramReply(self, chat_id=chat_id,
                             message_thread_id=thread if isinstance(thread, int) else None,
                             reply_to_message_id=question if isinstance(question, int) else None,
                             streaming=streaming)


class TelegramReply:
    """A :class:`functions.messaging.ReplyChannel` into one Telegram chat or forum topic.

    In a private chat it also previews (:class:`~functions.worker.capabilities.Previews`): the
    answer shows as a draft while it is written (``sendMessageDraft``), and goes out as one
    message when it is whole. Where Telegram refuses drafts, the answer is posted and edited,
    and that chat gets no drafts for :data:`DRAFT_REFUSAL_S`."""

    max_length: int = MAX_LENGTH

    def __init__(self, client: TelegramClient, *, chat_id: int, message_thread_id: int | None,
                 reply_to_message_id: int | None, streaming: bool = True) -> None:
        self.client = client
        self.chat_id = chat_id
        self.message_thread_id = message_thread_id
        self.reply_to_message_id = reply_to_message_id
        self.streaming = streaming
        self.draft_id = secrets.randbelow(2**31 - 1) + 1  # non-zero; one draft per answer

    def can_preview(self) -> bool:
        """Drafts are for private chats (a user's chat id is positive), unless refused lately."""
        return self.streaming and self.chat_id > 0 and not draft_refusals.refused(self.chat_id)

    async def preview(self, text: str) -> None:
        """Show ``text`` as the draft of the answer."""
        try:
            await self.client.send_message_draft(self.chat_id, self.draft_id, text,
                                                 message_thread_id=self.message_thread_id)
        except PlatformError as exc:
            draft_refusals.note(self.chat_id, exc)
            raise

    def length(self, text: str) -> int:
        """UTF-16 code units: an emoji outside the BMP counts two, as Telegram counts it."""
        return utf16_length(text)

    async def typing(self) -> None:
        """Send the "typing" action; a failure here is logged and never fails the answer."""
        try:
            await self.client.send_chat_action(self.chat_id, "typing",
                                               message_thread_id=self.message_thread_id)
        except PlatformError as exc:
            log.debug("telegram typing indicator skipped: %s", exc.message)

    async def post(self, text: str, part: int) -> str:
        """Part 0 replies to the question; later parts follow it in the same chat or topic."""
        message_id = await self.client.send_message(
            self.chat_id, text, message_thread_id=self.message_thread_id,
            reply_to_message_id=self.reply_to_message_id if part == 0 else None)
        return str(message_id)

    async def edit(self, ref: str, text: str, part: int) -> None:
        """Replace the text of a message :meth:`post` returned ``ref`` for."""
        await self.client.edit_message_text(self.chat_id, int(ref), text)

    def sources(self, citations: list[str]) -> str:
        """A numbered "Sources:" footer (plain text, as every message here)."""
        return plain_sources(citations)
