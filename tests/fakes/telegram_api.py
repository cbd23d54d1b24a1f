"""A stand-in for the Telegram Bot API, served on loopback by ``ServerThread(fake.app)``.

It answers the methods Charla calls the way https://core.telegram.org/bots/api documents them,
errors included (``{"ok": false, "error_code": N, "description": "..."}`` with the same HTTP
status), and records every request it receives so tests can check what was sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Call:
    """One request the fake received."""

    method: str  # the Bot API method, e.g. "sendMessage"
    http_method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any]
    status: int = 0  # the HTTP status the fake answered with


@dataclass
class _Failure:
    status: int | None = None  # answer with this error...
    retry_after: int | None = None
    delay_s: float = 0.0  # ...or wait this long, then answer normally


@dataclass
class FakeTelegram:
    """The Bot API for one bot ``token``; other tokens get 401 like the real one."""

    token: str
    username: str = "charla_test_bot"
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[int, int], str] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=dict)
    # (chat_id, draft_id) -> the draft's text; a message sent to the chat clears its drafts
    drafts: dict[tuple[int, int], str] = field(default_factory=dict)
    # When set, sendMessageDraft answers this 400 description (as where Telegram refuses).
    refuse_drafts: str | None = None

    def __post_init__(self) -> None:
        head = self.token.partition(":")[0]
        self.bot_id = int(head) if head.isdigit() else 1
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._next_id = 100
        self._in_flight = 0
        self.app = Starlette(routes=[
            Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
        ])

    # Switches for tests -------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500,
                  retry_after: int | None = None) -> None:
        """Answer the next ``count`` calls with ``status`` (429 carries ``retry_after``)."""
        with self._lock:
            self._failures += [_Failure(status=status, retry_after=retry_after)] * count

    def delay_next(self, count: int = 1, *, seconds: float) -> None:
        """Hold the next ``count`` calls ``seconds`` before acting on them and answering."""
        with self._lock:
            self._failures += [_Failure(delay_s=seconds)] * count

    def reset(self, wait_s: float = 5.0) -> None:
        """Forget everything, once calls still being held by :meth:`delay_next` are done."""
        deadline = time.monotonic() + wait_s
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)  # a held call finishing later would leak into the next test
        with self._lock:
            self._failures.clear()
            self.calls.clear()
            self.messages.clear()
            self.webhook.clear()
            self.drafts.clear()
            self.refuse_drafts = None

    def called(self, method: str) -> list[Call]:
        """The recorded calls of Bot API ``method``, oldest first."""
        return [call for call in self.calls if call.method == method]

    # The API ------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Charla",
                "username": self.username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def _endpoint(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            body = {}
        call = Call(method, request.method, request.url.path, dict(request.headers),
                    body if isinstance(body, dict) else {})
        self.calls.append(call)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            self._in_flight += 1
        try:
            response = await self._answer(request, method, call, failure)
        finally:
            with self._lock:
                self._in_flight -= 1
        call.status = response.status_code
        return response

    async def _answer(self, request: Request, method: str, call: Call,
                      failure: _Failure | None) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        if failure is not None and failure.status is not None:
            return _failure(failure)
        if failure is not None:
            await asyncio.sleep(failure.delay_s)
        handler = _METHODS.get(method)
        return handler(self, call.json) if handler else _error(404, "Not Found")

    def _send_message(self, body: dict[str, Any]) -> JSONResponse:
        text = body.get("text")
        if not isinstance(body.get("chat_id"), int | str):
            return _error(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        self._next_id += 1
        chat_id = body["chat_id"]
        self.messages[(chat_id, self._next_id)] = text
        for key in [k for k in self.drafts if k[0] == chat_id]:
            del self.drafts[key]  # the message takes the draft's place
        message: dict[str, Any] = {
            "message_id": self._next_id, "from": self.me(), "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if int(chat_id) > 0 else "supergroup"},
            "text": text,
        }
        if "message_thread_id" in body:
            message.update(message_thread_id=body["message_thread_id"], is_topic_message=True)
        return _ok(message)

    def _edit_message_text(self, body: dict[str, Any]) -> JSONResponse:
        key = (body.get("chat_id"), body.get("message_id"))
        text = body.get("text")
        if key not in self.messages:
            return _error(400, "Bad Request: message to edit not found")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: MESSAGE_TOO_LONG")
        if self.messages[key] == text:
            return _error(400, "Bad Request: message is not modified: specified new message "
                               "content and reply markup are exactly the same as a current "
                               "content and reply markup of the message")
        self.messages[key] = text
        return _ok({"message_id": key[1], "chat": {"id": key[0]}, "text": text,
                    "edit_date": int(time.time())})

    def _send_message_draft(self, body: dict[str, Any]) -> JSONResponse:
        chat_id, draft_id, text = body.get("chat_id"), body.get("draft_id"), body.get("text")
        if self.refuse_drafts:
            return _error(400, self.refuse_drafts)
        if not isinstance(chat_id, int) or chat_id <= 0:
            return _error(400, "Bad Request: drafts can be sent only to private chats")
        if not isinstance(draft_id, int) or draft_id == 0:
            return _error(400, "Bad Request: draft_id must be non-zero")
        if not isinstance(text, str) or len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        self.drafts[(chat_id, draft_id)] = text
        return _ok(True)

    def _send_chat_action(self, body: dict[str, Any]) -> JSONResponse:
        if body.get("action") not in _ACTIONS:
            return _error(400, "Bad Request: wrong parameter action in request")
        return _ok(True)

    def _get_me(self, body: dict[str, Any]) -> JSONResponse:
        return _ok(self.me())

    def _set_webhook(self, body: dict[str, Any]) -> JSONResponse:
        self.webhook = {"url": body.get("url", ""), "has_custom_certificate": False,
                        "pending_update_count": 0,
                        "max_connections": body.get("max_connections", 40),
                        "allowed_updates": body.get("allowed_updates", [])}
        return _ok(True, description="Webhook was set")

    def _get_webhook_info(self, body: dict[str, Any]) -> JSONResponse:
        info = self.webhook or {"url": "", "has_custom_certificate": False,
                                "pending_update_count": 0}
        return _ok(info)

    def _delete_webhook(self, body: dict[str, Any]) -> JSONResponse:
        was_set = bool(self.webhook.get("url"))
        self.webhook = {}
        return _ok(True, description="Webhook was deleted" if was_set
                   else "Webhook is already deleted")


_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})

_METHODS = {
    "sendMessage": FakeTelegram._send_message,
    "editMessageText": FakeTelegram._edit_message_text,
    "sendChatAction": FakeTelegram._send_chat_action,
    "sendMessageDraft": FakeTelegram._send_message_draft,
    "getMe": FakeTelegram._get_me,
    "setWebhook": FakeTelegram._set_webhook,
    "getWebhookInfo": FakeTelegram._get_webhook_info,
    "deleteWebhook": FakeTelegram._delete_webhook,
}


def _ok(result: Any, description: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return JSONResponse(body)


def _error(code: int, description: str, **parameters: Any) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=code)


def _failure(failure: _Failure) -> JSONResponse:
    if failure.status == 429:
        wait = failure.retry_after if failure.retry_after is not None else 5
        return _error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
    if failure.status == 500:
        return _error(500, "Internal Server Error")
    return _error(failure.status or 500, "Bad Gateway" if failure.status == 502 else "Error")
