"""The one client Charla uses to talk to Slack's Web API: post, update, stream, auth.test.

No automatic retries: a retried ``chat.postMessage`` can post the same answer twice, so every
failure comes out as one :class:`~functions.messaging.PlatformError` whose ``sent`` tells the
worker whether Slack may have acted anyway. Slack reports most errors as HTTP 200 with
``{"ok": false, "error": "..."}``, and rate limits as HTTP 429 with ``Retry-After``.
https://api.slack.com/web#responses, https://api.slack.com/apis/rate-limits
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from functions.messaging import PlatformError, Refusals, plain_sources
from shared.settings import Secret

log = logging.getLogger(__name__)

# A section block's text holds at most 3000 characters.
# https://api.slack.com/reference/block-kit/blocks#section
SECTION_TEXT_LIMIT = 3000

# Failures where the request cannot have reached Slack: sending again is safe.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError,
             httpx.UnsupportedProtocol, httpx.LocalProtocolError)


# Slack's error codes that another try may cure; every other ``ok: false`` stays refused
# (channel_not_found, not_in_channel, invalid_auth, msg_too_long ...).
# https://api.slack.com/methods/chat.postMessage#errors
_TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable",
                        "request_timeout", "ratelimited", "unknown_error"})

# Slack's own failures, after which "some aspect of the operation" may have succeeded: a
# chat.postMessage answered so may have posted. Such a post is found by its metadata on the
# job's next run (SlackReply.find), so it is neither lost nor posted twice.
# https://api.slack.com/methods/chat.postMessage#errors
_MAY_HAVE_ACTED = frozenset({"internal_error", "fatal_error"})
_POST = "chat.postMessage"

# The metadata event type that marks Charla's answers, with {"delivery", "part"} as payload.
# https://docs.slack.dev/messaging/message-metadata
ANSWER_EVENT = "charla_answer"
# How much of a thread SlackReply.find reads: pages of replies, oldest first.
REPLIES_PAGE = 200
REPLIES_PAGES = 5
# How long after a lost post SlackReply.find's "not there" is believed, when the HTTP client
# sets no read timeout to go by.
SETTLE_S = 60.0


# A streamed message's ref (functions/worker/reply.py keeps it in the outbox): "stream:<ts>", so
# that a later run of the job knows to stop the stream before it edits the message.
STREAM_REF = "stream:"

# How long a channel whose stream Slack refused is answered by post-then-edit instead.
STREAM_REFUSAL_S = 600.0
stream_refusals = Refusals("a Slack stream", STREAM_REFUSAL_S)  # by channel id


def escape(text: str) -> str:
    """Slack's three control characters as entities, so model output stays plain text.

    Without this an answer containing ``<!channel>`` or ``<@U123>`` would notify people.
    https://api.slack.com/reference/surfaces/formatting#escaping
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_body(text: str) -> dict[str, Any]:
    """``text`` as one mrkdwn section block, plus the same text as the notification fallback."""
    escaped = escape(text)
    body: dict[str, Any] = {"text": escaped}
    if escaped.strip():
        # A section needs at least one character; Slack answers no_text for an empty message.
        body["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "text": escaped}}]
    return body


def _ts_of(data: dict[str, Any], method: str) -> str:
    """The new message's ts from an ``ok`` answer of ``method``."""
    ts = data.get("ts")
    if not isinstance(ts, str) or not ts:
        # Slack acted (ok: true) but we cannot refer to the message: do not send again.
        raise PlatformError(f"Slack {method}: answer without ts", sent=True, status=200)
    return ts


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_code(data: Any) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    # Slack's error codes are short snake_case words; keep anything else out of logs.
    return error[:80] if isinstance(error, str) and error else "unknown_error"


class SlackClient:
    """Calls Slack's Web API as the bot, over the process's shared ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, bot_token: Secret, http: httpx.AsyncClient) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = bot_token
        self._http = http

    @property
    def timeout_s(self) -> float | None:
        """How long the HTTP client waits for an answer (None: for ever)."""
        return self._http.timeout.read

    async def post_message(self, channel: str, text: str, *, thread_ts: str | None = None,
                           metadata: dict[str, Any] | None = None) -> str:
        """Post ``text`` (escaped) to ``channel``, in the thread ``thread_ts``, with the
        message ``metadata`` (``event_type``, ``event_payload``) if any; return its ts."""
        payload = {"channel": channel, **message_body(text)}
        if thread_ts:
            payload["thread_ts"] = thread_ts
        if metadata is not None:
            payload["metadata"] = metadata
        return _ts_of(await self._call(_POST, payload), _POST)

    async def replies(self, channel: str, ts: str, *, cursor: str | None = None,
                      limit: int = REPLIES_PAGE) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the thread ``ts`` (oldest first), with every message's metadata; and
        the cursor of the next page, None at the end. A read method: sent as a query string,
        not JSON. https://docs.slack.dev/reference/methods/conversations.replies"""
        params = {"channel": channel, "ts": ts, "include_all_metadata": "true",
                  "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        data = await self._call("conversations.replies", params, read=True)
        messages = data.get("messages")
        meta = data.get("response_metadata")
        following = meta.get("next_cursor") if isinstance(meta, dict) else None
        return ([m for m in messages if isinstance(m, dict)] if isinstance(messages, list)
                else [], following if isinstance(following, str) and following else None)

    async def update(self, channel: str, ts: str, text: str) -> None:
        """Replace the text of the bot's message ``ts`` in ``channel`` (``chat.update``)."""
        await self._call("chat.update", {"channel": channel, "ts": ts, **message_body(text)})

    async def start_stream(self, channel: str, thread_ts: str, text: str, *,
                           recipient: tuple[str, str] | None = None) -> str:
        """Start a streamed reply in the thread ``thread_ts`` with ``text`` (escaped, as
        Markdown); return the message's ts. ``recipient``: the asker's (user, team), which Slack
        needs outside a DM. https://docs.slack.dev/reference/methods/chat.startStream"""
        payload: dict[str, Any] = {"channel": channel, "thread_ts": thread_ts,
                                   "markdown_text": escape(text)}
        if recipient is not None:
            payload["recipient_user_id"], payload["recipient_team_id"] = recipient
        return _ts_of(await self._call("chat.startStream", payload), "chat.startStream")

    async def append_stream(self, channel: str, ts: str, text: str) -> None:
        """Add ``text`` (escaped) to the end of the streamed message ``ts``."""
        await self._call("chat.appendStream",
                         {"channel": channel, "ts": ts, "markdown_text": escape(text)})

    async def stop_stream(self, channel: str, ts: str, text: str = "") -> None:
        """End the streamed message ``ts``, adding ``text`` (escaped) first when there is any."""
        payload: dict[str, Any] = {"channel": channel, "ts": ts}
        if text:
            payload["markdown_text"] = escape(text)
        await self._call("chat.stopStream", payload)

    async def auth_test(self) -> dict[str, Any]:
        """Who the token belongs to: ``team_id``, ``user_id`` (the bot user), ``bot_id``..."""
        return await self._call("auth.test", {})

    def reply_channel(self, reply_to: dict[str, Any], *, streaming: bool = True,
                      mark: str | None = None) -> SlackReply:
        """The :class:`~functions.messaging.ReplyChannel` for a stored ``reply_to``;
        ``streaming``: whether it may answer with Slack's native streaming; ``mark``: the
        answer's delivery key, put on its posts so that a lost post can be found.

        Raises ValueError when ``reply_to`` has no channel (a job not made by the Slack edge).
        """
        channel, thread_ts = reply_to.get("channel"), reply_to.get("thread_ts")
        if not isinstance(channel, str) or not channel:
            raise ValueError("Slack reply_to has no channel")
        if thread_ts is not None and not isinstance(thread_ts, str):
            raise ValueError("Slack reply_to has a thread_ts that is not a string")
        user, team = reply_to.get("user"), reply_to.get("team")
        # Jobs queued before the asker was recorded have none: they stream in DMs only.
        recipient = (user, team) if isinstance(user, str) and isinstance(team, str) and \
            user and team else None
        return SlackReply(self, channel, thread_ts or None, recipient=recipient,
                          streaming=streaming, mark=mark)

    async def _call(self, method: str, payload: dict[str, Any], *,
                    read: bool = False) -> dict[str, Any]:
        """Call ``method`` with ``payload``: as JSON, or as a GET query string when ``read``
        (Slack's read methods do not take JSON bodies)."""
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        url = f"{self._base_url}/{method}"
        try:
            if read:
                response = await self._http.get(url, params=payload, headers=headers)
            else:
                headers["Content-Type"] = "application/json; charset=utf-8"
                content = json.dumps(payload, ensure_ascii=False).encode()
                response = await self._http.post(url, content=content, headers=headers)
        # `from None` and only the error's class name: nothing of the request goes along.
        except _NOT_SENT as exc:
            raise PlatformError(f"Slack {method}: could not connect ({type(exc).__name__})",
                                sent=False) from None
        except httpx.HTTPError as exc:
            # ReadTimeout, RemoteProtocolError, ReadError, WriteTimeout, WriteError: the request
            # may have reached Slack, which may have posted.
            raise PlatformError(f"Slack {method}: no answer ({type(exc).__name__})",
                                sent=True) from None
        status = response.status_code
        log.debug("slack %s answered HTTP %s", method, status)
        if status == 429:
            raise PlatformError(f"Slack {method}: rate limited", status=429,
                                retry_after=_retry_after(response))
        if not response.is_success:
            raise PlatformError(f"Slack {method}: HTTP {status}", status=status,
                                sent=method == _POST and status >= 500)
        try:
            data = response.json()
        except ValueError:
            raise PlatformError(f"Slack {method}: unreadable answer", status=status) from None
        if not isinstance(data, dict) or data.get("ok") is not True:
            code = _error_code(data)
            raise PlatformError(f"Slack {method}: {code}", status=status,
                                permanent=code not in _TRANSIENT,
                                sent=method == _POST and code in _MAY_HAVE_ACTED)
        return data


class SlackReply:
    """One Slack thread as a :class:`~functions.messaging.ReplyChannel` that can also stream
    (:class:`~functions.worker.capabilities.Streams`): Slack's ``chat.startStream``,
    ``chat.appendStream`` and ``chat.stopStream`` show the answer as it is written, in a
    thread. Where Slack refuses to stream (a channel type, an app without the feature, a
    channel stream without the asker's ids), the answer is posted and edited instead, and that
    channel is not offered a stream again for :data:`STREAM_REFUSAL_S`.

    With a ``mark`` (the answer's delivery key), every post carries it as message metadata,
    so that a post whose answer was lost can be found in the thread (:meth:`find`, the
    worker's :class:`~functions.worker.capabilities.Finds`) rather than left or posted twice. A
    stream cannot carry metadata (``chat.startStream`` takes none): a lost start stays unknown.
    """

    max_length: int = SECTION_TEXT_LIMIT

    def __init__(self, client: SlackClient, channel: str, thread_ts: str | None, *,
                 recipient: tuple[str, str] | None = None, streaming: bool = True,
                 mark: str | None = None) -> None:
        self.client = client
        self.mark = mark
        # A post Slack has not shown after three times the client's wait is not coming.
        wait = client.timeout_s
        self.settle_s = 3 * wait if wait is not None else SETTLE_S
        self.channel = channel
        self.thread_ts = thread_ts
        self.recipient = recipient
        self.streaming = streaming
        self._stopped: set[str] = set()  # streamed refs this reply stopped
        self._streamed = False  # whether this answer started as a stream (shown as Markdown)

    def can_stream(self) -> bool:
        """Whether to offer this answer as a stream: in a thread, in a DM or with the asker's
        ids (Slack needs them in channels), and not refused here lately."""
        if not self.streaming or not self.thread_ts:
            return False
        if self.recipient is None and not self.channel.startswith("D"):
            return False
        return not stream_refusals.refused(self.channel)

    async def start_stream(self, text: str) -> str:
        """Start the streamed message with ``text``; return its ref."""
        assert self.thread_ts is not None
        try:
            ts = await self.client.start_stream(self.channel, self.thread_ts, text,
                                                recipient=self.recipient)
        except PlatformError as exc:
            stream_refusals.note(self.channel, exc)
            raise
        self._streamed = True
        return STREAM_REF + ts

    async def append_stream(self, ref: str, text: str) -> None:
        await self.client.append_stream(self.channel, _ts(ref), text)

    async def stop_stream(self, ref: str, text: str) -> None:
        try:
            await self.client.stop_stream(self.channel, _ts(ref), text)
        except PlatformError as exc:
            if not exc.sent and exc.permanent:
                self._stopped.add(ref)  # stopped already or expired: nothing left to stop
            raise
        self._stopped.add(ref)

    def length(self, text: str) -> int:
        """Length after escaping: ``&`` becomes ``&amp;``, and Slack limits what it receives."""
        return len(escape(text))

    async def typing(self) -> None:
        """Nothing: the Web API has no typing indicator for bots."""

    async def post(self, text: str, part: int) -> str:
        """Post part ``part`` in the thread, marked as this answer's (see :meth:`find`);
        return the message ``ts`` (the ref for edits)."""
        metadata = None if self.mark is None else {
            "event_type": ANSWER_EVENT, "event_payload": {"delivery": self.mark, "part": part}}
        return await self.client.post_message(self.channel, text, thread_ts=self.thread_ts,
                                              metadata=metadata)

    async def find(self, part: int) -> str | None:
        """The ts of this answer's part ``part`` if the thread shows it (a post :meth:`post`
        marked), None if it does not. Reads the thread's first :data:`REPLIES_PAGES` pages.

        Raises PlatformError when Slack cannot say now (rate limited, its own failure): try
        later. Raises LookupError when it cannot be told: no mark or no thread, Slack refuses
        to read the thread, or the thread is longer than that."""
        if self.mark is None or self.thread_ts is None:
            raise LookupError("this Slack reply's posts carry no mark to find them by")
        cursor: str | None = None
        for _ in range(REPLIES_PAGES):
            try:
                messages, cursor = await self.client.replies(
                    self.channel, self.thread_ts, cursor=cursor, limit=REPLIES_PAGE)
            except PlatformError as exc:
                if exc.permanent:  # missing_scope, not_in_channel, thread_not_found ...
                    raise LookupError(f"cannot read the thread: {exc.message}") from None
                raise
            for message in messages:
                if _is_part(message, self.mark, part):
                    return str(message["ts"])
            if cursor is None:
                return None
        raise LookupError("the thread is longer than is read to find a post")

    async def edit(self, ref: str, text: str, part: int) -> None:
        """Replace the text of the message ``ref`` posted by :meth:`post` or streamed.

        A streamed message that this reply did not stop (an earlier run of the job streamed
        it) is stopped first; Slack's refusal, when it was stopped already or has expired,
        does not matter."""
        if ref.startswith(STREAM_REF) and ref not in self._stopped:
            try:
                await self.stop_stream(ref, "")
            except PlatformError as exc:
                if exc.sent or not exc.permanent:
                    raise
        await self.client.update(self.channel, _ts(ref), text)

    def sources(self, citations: list[str]) -> str:
        """A numbered "Sources:" footer, the label in bold: Markdown's ``**`` in a streamed
        answer, mrkdwn's ``*`` in a posted one."""
        return plain_sources(citations, ("**", "**") if self._streamed else ("*", "*"))


def _ts(ref: str) -> str:
    return ref.removeprefix(STREAM_REF)


def _is_part(message: dict[str, Any], mark: str, part: int) -> bool:
    """Whether ``message`` is a bot's post that :meth:`SlackReply.post` marked as part
    ``part`` of the answer ``mark``."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != ANSWER_EVENT:
        return False
    payload = metadata.get("event_payload")
    ts = message.get("ts")
    return (isinstance(payload, dict) and payload.get("delivery") == mark
            and payload.get("part") == part and bool(message.get("bot_id"))
            and isinstance(ts, str) and bool(ts))
