"""What a verified Slack Events API delivery asks of Charla: pure functions over the JSON body.

:func:`classify` sorts a delivery into a URL check to echo, a question to answer, or something
to ignore. Messages from bots (including this one) are ignored so that the bot never answers
itself or another bot in a loop, and edits so that an edited question is not answered twice. A
message with files attached is answered by its text; the files are not read.
https://api.slack.com/apis/events-api#callback-field
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from functions.messaging import Inbound

PLATFORM = "slack"
_ANSWERED_CHANNEL_TYPES = ("channel", "group", "mpim")


@dataclass(frozen=True)
class UrlVerification:
    """Slack checking the request URL: answer with ``challenge``."""

    challenge: str


@dataclass(frozen=True)
class Question:
    """A message to answer.

    ``needs_existing_conversation``: answer only if Charla was asked in this thread
    (functions/slack/threads.py): a thread reply that does not mention the bot must not pull it into
    every thread.
    """

    inbound: Inbound
    needs_existing_conversation: bool = False
    direct: bool = False  # a direct message to the bot


# "forget me" in a direct message asks the bot to delete everything it stored about the person.
_FORGET = re.compile(r"(?i)\s*(?:please\s+)?"
                     r"(?:forget\s+(?:about\s+)?me|olv[ií]da(?:me|te\s+de\s+m[ií]))"
                     r"(?:\s+please|,?\s+por\s+favor)?\s*[.!]*\s*")


def forget_request(text: str) -> bool:
    return _FORGET.fullmatch(text) is not None


@dataclass(frozen=True)
class Ignored:
    """A delivery to acknowledge and drop; ``reason`` is safe to log (no message text)."""

    reason: str


Classified = UrlVerification | Question | Ignored


def _text(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def event_id(body: dict[str, Any]) -> str | None:
    """The envelope's ``event_id``: the same across Slack's retries of one event."""
    return _text(body, "event_id")


def event(body: dict[str, Any]) -> dict[str, Any] | None:
    """The inner ``event`` object of an ``event_callback`` envelope."""
    inner = body.get("event")
    return inner if isinstance(inner, dict) else None


def team_id(body: dict[str, Any]) -> str | None:
    """The workspace the event belongs to: the envelope's ``team_id``, else the event's."""
    return _text(body, "team_id") or _text(event(body), "team")


def bot_user_id(body: dict[str, Any]) -> str | None:
    """This app's bot user id, from the envelope's ``authorizations`` (the bot entry)."""
    authorizations = body.get("authorizations")
    if not isinstance(authorizations, list):
        return None
    for entry in authorizations:
        if isinstance(entry, dict) and entry.get("is_bot") is True:
            found = _text(entry, "user_id")
            if found:
                return found
    return None


def _mention(user_id: str) -> re.Pattern[str]:
    # <@U123> and the older <@U123|name> form, plus the spaces after it.
    return re.compile(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>[ \t]*")


def mentions(text: str, user_id: str) -> bool:
    """Whether ``text`` mentions ``user_id`` in Slack's ``<@U…>`` markup."""
    return _mention(user_id).search(text) is not None


def strip_mentions(text: str, user_id: str | None) -> str:
    """``text`` without any mention of ``user_id``, trimmed; other mentions stay."""
    if user_id is None:
        # Bot id unknown: an app_mention starts with the mention more often than not.
        return re.sub(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>[ \t]*", "", text).strip()
    return _mention(user_id).sub("", text).strip()


# Subtypes that are still a person's new message: one with files attached (the files are not
# read; its text is answered). Every other subtype is a bot, an edit, a deletion, a join...
# https://api.slack.com/events/message/file_share
_PERSON_SUBTYPES = frozenset({"file_share"})


def _not_a_new_message(ev: dict[str, Any], bot_user: str | None) -> str | None:
    """Why this event must not be answered as a person's new message, or None."""
    if "bot_id" in ev or "bot_profile" in ev:
        return "message from a bot"
    if "subtype" in ev:
        subtype = _text(ev, "subtype")
        if subtype not in _PERSON_SUBTYPES:
            # bot_message, message_changed, message_deleted, channel_join, thread_broadcast ...
            return f"message subtype {subtype or '?'}"
    if "edited" in ev:
        # Editing a message that mentions the bot delivers app_mention again, under a new
        # event_id, with ``edited`` and no subtype: the question was answered when first sent.
        return "edited message (answered when it was first sent)"
    if bot_user is not None and ev.get("user") == bot_user:
        return "message from this bot itself"
    return None


def classify(body: dict[str, Any], *, bot_user: str | None = None) -> Classified:
    """Sort one verified delivery. ``bot_user`` overrides the id found in the envelope."""
    kind = body.get("type")
    if kind == "url_verification":
        challenge = _text(body, "challenge")
        if challenge is None:
            return Ignored("url_verification without challenge")
        return UrlVerification(challenge)
    if kind != "event_callback":
        return Ignored(f"envelope type {kind if isinstance(kind, str) else '?'}")
    ev = event(body)
    if ev is None:
        return Ignored("event_callback without event")
    ev_type = ev.get("type")
    if ev_type not in ("app_mention", "message"):
        return Ignored(f"event type {ev_type if isinstance(ev_type, str) else '?'}")
    bot_user = bot_user or bot_user_id(body)
    if reason := _not_a_new_message(ev, bot_user):
        return Ignored(reason)

    needs_existing = False
    if ev_type == "message" and ev.get("channel_type") != "im":
        if ev.get("channel_type") not in _ANSWERED_CHANNEL_TYPES:
            return Ignored("message in an unknown kind of channel")
        thread_ts, ts = _text(ev, "thread_ts"), _text(ev, "ts")
        if thread_ts is None or thread_ts == ts:
            return Ignored("channel message outside a thread without a mention")
        if bot_user is None:
            # Cannot tell whether it mentions the bot, so it may also come as app_mention.
            return Ignored("thread reply while the bot user id is unknown")
        if mentions(_text(ev, "text") or "", bot_user):
            return Ignored("thread reply mentioning the bot (answered as app_mention)")
        needs_existing = True

    inbound = _inbound(body, ev, bot_user)
    if isinstance(inbound, Ignored):
        return inbound
    return Question(inbound, needs_existing_conversation=needs_existing,
                    direct=ev_type == "message" and ev.get("channel_type") == "im")


def _inbound(body: dict[str, Any], ev: dict[str, Any], bot_user: str | None) -> Inbound | Ignored:
    delivery, team = event_id(body), team_id(body)
    channel, user, ts = _text(ev, "channel"), _text(ev, "user"), _text(ev, "ts")
    if not (delivery and team and channel and user and ts):
        return Ignored("event without event_id, team, channel, user or ts")
    text = strip_mentions(_text(ev, "text") or "", bot_user)
    if not text:
        # A file alone: the bot does not read files, and has no question to answer.
        return Ignored("files without text" if ev.get("files") else "empty text")
    thread = _text(ev, "thread_ts") or ts
    return Inbound(
        platform=PLATFORM,
        delivery_id=delivery,
        conversation=f"{team}:{channel}:{thread}",
        user=f"{team}:{user}",
        text=text,
        # The asker as Slack names them: a streamed answer in a channel is addressed to them.
        reply_to={"channel": channel, "thread_ts": thread, "user": user,
                  "team": _text(ev, "user_team") or _text(ev, "team") or team},
        # Knowledge-base grants: this channel, then the whole workspace.
        principals=(f"slack:{team}:{channel}", f"slack:{team}"),
    )
