"""Slack's Web API played by a local Starlette app, for tests of the Slack client.

Slack lies outside the team's network, so tests run this fake with ``ServerThread`` and point
the client at ``server.url``. It answers like Slack does (HTTP 200 with ``ok: false`` for
errors, 429 with ``Retry-After`` when rate limited), records every call it receives, and can be
told to fail the next calls in each of the ways Slack fails.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

BOT_TOKEN = "xoxb-1111111111-2222222222-fAkEsEcReTtOkEn0123456789"
TEAM_ID = "T0A1B2C3D"
BOT_USER_ID = "U07CHARLA"
BOT_ID = "B07CHARLA"
APP_ID = "A07CHARLA"
SECTION_TEXT_LIMIT = 3000
STREAM_TEXT_LIMIT = 12_000  # markdown_text, per streaming call

FailureMode = Literal["ratelimited", "error", "server_error", "slow", "acted_server_error",
                      "acted_error", "lost"]
# Modes that do the work first, then answer as a failure.
_ACTED = ("acted_server_error", "acted_error")


class Call(NamedTuple):
    """One request the fake received: Web API method name, headers (lower-case), JSON body."""

    method: str
    headers: dict[str, str]
    json: Any
    at: float = 0.0  # time.monotonic() when it arrived (the end-to-end benchmark reads it)


@dataclass
class _Failure:
    mode: FailureMode
    error: str
    retry_after: int
    delay_s: float
    method: str | None = None  # only calls of this method fail; None: any call


class FakeSlack:
    """A Starlette app serving ``chat.postMessage``, ``chat.update``, the three streaming
    methods (``chat.startStream``, ``chat.appendStream``, ``chat.stopStream``),
    ``conversations.replies`` and ``auth.test``.

    Messages are stored with the bot's identity (``user``, ``bot_id``, ``app_id``) and the
    ``metadata`` they were posted with, which ``conversations.replies`` returns only when asked
    (``include_all_metadata``), as Slack does.

    ``refuse_streams``, when set, is the error ``chat.startStream`` answers with (as for a
    channel type or an app that Slack does not stream to)."""

    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.refuse_streams: str | None = None
        self.calls: list[Call] = []
        # (channel, ts) -> the message as Slack would store it
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._counter = 0
        self._lock = threading.Lock()  # tests read and arm it from another thread
        self.app = Starlette(routes=[
            Route("/chat.postMessage", self._post_message, methods=["POST"]),
            Route("/chat.update", self._update, methods=["POST"]),
            Route("/chat.startStream", self._start_stream, methods=["POST"]),
            Route("/chat.appendStream", self._append_stream, methods=["POST"]),
            Route("/chat.stopStream", self._stop_stream, methods=["POST"]),
            Route("/conversations.replies", self._replies, methods=["GET", "POST"]),
            Route("/auth.test", self._auth_test, methods=["POST"]),
        ])

    def fail_next(self, n: int = 1, *, mode: FailureMode, error: str = "channel_not_found",
                  retry_after: int = 30, delay_s: float = 2.0,
                  method: str | None = None) -> None:
        """Make the next ``n`` calls fail: ``ratelimited`` (429 + Retry-After), ``error``
        (200 with ``ok: false`` and ``error``), ``server_error`` (500), ``slow`` (answer
        normally after ``delay_s``, i.e. act, but later than the client waits), ``lost``
        (do nothing, and answer 500 only after ``delay_s``: the client sees no answer),
        ``acted_server_error`` (act, then answer 500) or ``acted_error`` (act, then answer
        ``ok: false`` with ``error``, e.g. ``internal_error``); the last two act only in
        ``chat.postMessage``, elsewhere they answer as usual. ``method``: only the next calls
        of that Web API method fail (by default, the next calls of any)."""
        with self._lock:
            self._failures.extend(_Failure(mode, error, retry_after, delay_s, method)
                                  for _ in range(n))

    def disarm(self) -> None:
        """Forget the failures not yet met."""
        with self._lock:
            self._failures.clear()

    def reset(self) -> None:
        """Forget calls, messages, pending failures and a refusal to stream."""
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self._failures.clear()
            self.refuse_streams = None

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of one Web API method, oldest first."""
        return [call for call in self.calls if call.method == method]

    async def _receive(self, request: Request) -> tuple[Any, Response | None]:
        """Record the call; return its JSON body (a read's query string) and, if it must fail,
        the failure answer. A failure that acts first is left in ``request.state.then``."""
        request.state.then = None
        raw = await request.body()
        if request.method == "GET":
            body: Any = dict(request.query_params)
        else:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = None
        method = request.url.path.lstrip("/")
        with self._lock:
            self.calls.append(Call(method, dict(request.headers), body, time.monotonic()))
            failure = next((f for f in self._failures if f.method in (None, method)), None)
            if failure is not None:
                self._failures.remove(failure)
        if failure is not None:
            if failure.mode == "ratelimited":
                return body, JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429,
                                          headers={"Retry-After": str(failure.retry_after)})
            if failure.mode == "error":
                return body, _error(failure.error)
            if failure.mode == "server_error":
                return body, PlainTextResponse("Internal Server Error", status_code=500)
            if failure.mode == "lost":
                await asyncio.sleep(failure.delay_s)
                return body, PlainTextResponse("Gateway Timeout", status_code=504)
            if failure.mode in _ACTED:
                request.state.then = failure
            else:
                await asyncio.sleep(failure.delay_s)  # slow: then act as usual
        authorization = request.headers.get("authorization")
        if not authorization:
            return body, _error("not_authed")
        if authorization != f"Bearer {self.token}":
            return body, _error("invalid_auth")
        if not isinstance(body, dict) or (request.method != "GET" and not request.headers.get(
                "content-type", "").startswith("application/json")):
            return body, _error("invalid_arguments")
        return body, None

    @staticmethod
    def _acted(request: Request, response: Response) -> Response:
        """``response``, or the failure the call was told to answer after acting."""
        then: _Failure | None = request.state.then
        if then is None:
            return response
        if then.mode == "acted_server_error":
            return PlainTextResponse("Internal Server Error", status_code=500)
        return _error(then.error)

    def _next_ts(self) -> str:
        with self._lock:
            self._counter += 1
            return f"1718000000.{self._counter:06d}"

    async def _post_message(self, request: Request) -> Response:
        body, failed = await self._receive(request)
        if failed is not None:
            return failed
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        if problem := _check_content(body):
            return _error(problem)
        ts = self._next_ts()
        metadata = body.get("metadata")
        if metadata is not None and not (
                isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
                and isinstance(metadata.get("event_payload"), dict)):
            return _error("invalid_metadata_format")
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID,
                   "ts": ts, "text": body.get("text", ""), "blocks": body.get("blocks", []),
                   "team": TEAM_ID}
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        if metadata is not None:
            message["metadata"] = metadata
        self.messages[(channel, ts)] = message
        return self._acted(request, JSONResponse(
            {"ok": True, "channel": channel, "ts": ts, "message": message}))

    async def _replies(self, request: Request) -> Response:
        """A thread's messages, oldest first: the parent (when the fake has it) and the
        replies, ``limit`` a page, paged by ``cursor``; metadata only with
        ``include_all_metadata``."""
        body, failed = await self._receive(request)
        if failed is not None:
            return failed
        channel, thread = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not isinstance(thread, str) or not thread:
            return _error("invalid_arguments")
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("true", "1")
        try:
            limit = max(1, min(1000, int(body.get("limit") or 1000)))
            start = int(str(body.get("cursor") or "next:0").removeprefix("next:"))
        except ValueError:
            return _error("invalid_cursor")
        thread_messages = [m for (c, ts), m in sorted(self.messages.items())
                           if c == channel and (ts == thread or m.get("thread_ts") == thread)]
        page = thread_messages[start:start + limit]
        shown = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
                 for m in page]
        more = start + limit < len(thread_messages)
        return JSONResponse({"ok": True, "messages": shown, "has_more": more,
                             "response_metadata": {
                                 "next_cursor": f"next:{start + limit}" if more else ""}})

    async def _update(self, request: Request) -> Response:
        body, failed = await self._receive(request)
        if failed is not None:
            return failed
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            return _error("invalid_arguments")
        message = self.messages.get((channel, ts))
        if message is None:
            return _error("message_not_found")
        if message.get("streaming"):
            # Stricter than Slack documents: a stream is stopped before its message is edited.
            return _error("message_is_streaming")
        if problem := _check_content(body):
            return _error(problem)
        message.update(text=body.get("text", ""), blocks=body.get("blocks", []),
                       edited={"user": BOT_USER_ID, "ts": self._next_ts()})
        return JSONResponse({"ok": True, "channel": channel, "ts": ts,
                             "text": message["text"], "message": message})

    async def _start_stream(self, request: Request) -> Response:
        body, failed = await self._receive(request)
        if failed is not None:
            return failed
        if self.refuse_streams:
            return _error(self.refuse_streams)
        channel, thread = body.get("channel"), body.get("thread_ts")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        if not channel.startswith("D"):  # "Required when streaming to channels"
            if not body.get("recipient_user_id"):
                return _error("missing_recipient_user_id")
            if not body.get("recipient_team_id"):
                return _error("missing_recipient_team_id")
        text = body.get("markdown_text", "")
        if not isinstance(text, str) or len(text) > STREAM_TEXT_LIMIT:
            return _error("msg_too_long")
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts,
                   "text": text, "blocks": [], "team": TEAM_ID, "streaming": True,
                   "recipient": (body.get("recipient_user_id"), body.get("recipient_team_id"))}
        if thread:
            message["thread_ts"] = thread
        self.messages[(channel, ts)] = message
        return JSONResponse({"ok": True, "channel": channel, "ts": ts})

    async def _append_stream(self, request: Request) -> Response:
        return await self._stream_call(request, stop=False)

    async def _stop_stream(self, request: Request) -> Response:
        return await self._stream_call(request, stop=True)

    async def _stream_call(self, request: Request, *, stop: bool) -> Response:
        body, failed = await self._receive(request)
        if failed is not None:
            return failed
        message = self.messages.get((body.get("channel"), body.get("ts")))
        if message is None:
            return _error("message_not_found")
        if not message.get("streaming"):
            return _error("message_not_in_streaming_state")
        text = body.get("markdown_text", "")
        if not isinstance(text, str) or len(text) > STREAM_TEXT_LIMIT:
            return _error("msg_too_long")
        if not stop and not text:
            return _error("no_text")
        message["text"] += text
        if stop:
            message["streaming"] = False
        return JSONResponse({"ok": True, "channel": body["channel"], "ts": body["ts"]})

    async def _auth_test(self, request: Request) -> Response:
        _, failed = await self._receive(request)
        if failed is not None:
            return failed
        return JSONResponse({
            "ok": True, "url": "https://charla-test.slack.com/", "team": "Charla Test",
            "user": "charla", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
            "is_enterprise_install": False,
        })


def _error(code: str) -> JSONResponse:
    # Slack reports method errors with HTTP 200.
    return JSONResponse({"ok": False, "error": code})


def _check_content(body: dict[str, Any]) -> str | None:
    """Slack's checks on a message's text and blocks: an error code, or None when fine."""
    text, blocks = body.get("text"), body.get("blocks")
    if not text and not blocks:
        return "no_text"
    for block in blocks or []:
        if not isinstance(block, dict) or block.get("type") != "section":
            return "invalid_blocks"
        inner = block.get("text")
        content = inner.get("text") if isinstance(inner, dict) else None
        if not isinstance(content, str):
            return "invalid_blocks"
        if not 1 <= len(content) <= SECTION_TEXT_LIMIT:
            return "invalid_blocks"
    return None
