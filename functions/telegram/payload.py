"""What a Telegram Update asks of the bot: a command, a question, or nothing.

Plain functions over the Update dict (https://core.telegram.org/bots/api#update). Entity
offsets and lengths count UTF-16 code units (https://core.telegram.org/api/entities), so text
is cut by those units, not by Python characters: an emoji before a mention shifts it by two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.messaging import Inbound

PLATFORM = "telegram"
COMMANDS = frozenset({"start", "help", "reset", "forget"})
ASK = "ask"


@dataclass(frozen=True)
class Command:
    """One of the bot's own commands (``/start``, ``/help``, ``/reset``, ``/forget``), without
    the slash."""

    name: str
    chat_id: int
    message_thread_id: int | None
    conversation: str
    user: str
    delivery_id: str


@dataclass(frozen=True)
class Question:
    """A message the bot should answer."""

    inbound: Inbound


@dataclass(frozen=True)
class Ignored:
    """An update the bot leaves alone, and why (for a debug log line, never the text)."""

    reason: str


def bot_id_from_token(token: str) -> int:
    """The bot's user id: the part of its token before the colon (``123456:ABC...``).

    Raises ValueError for a malformed token; the message never repeats the token.
    """
    head, sep, tail = token.partition(":")
    if not sep or not tail or not head.isascii() or not head.isdigit():
        raise ValueError("malformed Telegram bot token: expected '<bot id>:<secret>'")
    return int(head)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def _cut(units: bytes, start: int, end: int) -> str:
    # Two bytes per code unit; "replace" keeps a bad offset from raising mid-update.
    return units[2 * start:2 * end].decode("utf-16-le", errors="replace")


def _entities(message: dict[str, Any], kind: str, field: str) -> list[tuple[int, int]]:
    """(offset, end) in UTF-16 units of each well-formed entity of type ``kind`` in
    ``message[field]`` (``entities`` of a text, ``caption_entities`` of a caption)."""
    spans = []
    for entity in message.get(field) or ():
        if not isinstance(entity, dict) or entity.get("type") != kind:
            continue
        offset, length = entity.get("offset"), entity.get("length")
        if isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length > 0:
            spans.append((offset, offset + length))
    return spans


def _without(units: bytes, spans: list[tuple[int, int]]) -> str:
    """The text with ``spans`` cut out, each seam closed with one space, ends trimmed."""
    pieces, position = [], 0
    for start, end in sorted(spans):
        pieces.append(_cut(units, position, start))
        position = max(position, end)
    pieces.append(_cut(units, position, len(units) // 2))
    return " ".join(piece.strip() for piece in pieces if piece.strip())


def _replies_to_bot(message: dict[str, Any], bot_id: int) -> bool:
    replied = message.get("reply_to_message")
    if not isinstance(replied, dict):
        return False
    # In a forum topic every message "replies" to the topic's first (service) message; a topic
    # the bot opened must not make every message in it a question to the bot.
    if message.get("is_topic_message") and (
        "forum_topic_created" in replied
        or replied.get("message_id") == message.get("message_thread_id")
    ):
        return False
    sender = replied.get("from")
    return isinstance(sender, dict) and sender.get("id") == bot_id


def classify(update: dict[str, Any], *, bot_id: int,
             bot_username: str | None) -> Command | Question | Ignored:
    """Decide what ``update`` asks of the bot whose user id is ``bot_id``.

    Private chats: every text message is a question. Groups: only messages that mention
    ``@bot_username``, reply to the bot, or start with ``/ask``. ``bot_username`` may be None
    while it is unknown; then only replies and ``/ask`` count in groups. A photo, document or
    other media with a caption counts as its caption (the file itself is not read); media
    without a caption, a sticker or a location has no text and is ignored.
    """
    message = update.get("message")
    if not isinstance(update.get("update_id"), int):
        return Ignored("update without an update_id")  # nothing to de-duplicate it by
    if not isinstance(message, dict):
        kinds = sorted(key for key in update if key != "update_id")
        return Ignored(f"not a new message: {', '.join(kinds) or 'empty update'}")
    chat, sender = message.get("chat"), message.get("from")
    # A caption is the text of a photo, a document, a video...; its entities (a mention, a
    # command) come in caption_entities. https://core.telegram.org/bots/api#message
    source = "text" if "text" in message else "caption"
    text = message.get(source)
    if not isinstance(text, str) or not text:
        return Ignored("message without text or caption")
    entities = "entities" if source == "text" else "caption_entities"
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return Ignored("message without a chat")
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), int):
        return Ignored("message without a sender")
    if sender.get("is_bot") or sender["id"] == bot_id:
        return Ignored("message from a bot")  # answering bots invites reply loops

    chat_id: int = chat["id"]
    private = chat.get("type") == "private"
    thread = message.get("message_thread_id")
    # Only forum topics are separate conversations; in plain groups message_thread_id marks a
    # reply chain, and sending into it would fail ("message thread not found").
    topic = thread if message.get("is_topic_message") and isinstance(thread, int) else None
    conversation = f"{chat_id}:{topic}" if topic is not None else str(chat_id)
    user, delivery_id = str(sender["id"]), str(update.get("update_id"))
    me = f"@{bot_username.lstrip('@')}".lower() if bot_username else None

    units = _utf16(text)
    mentions = [s for s in _entities(message, "mention", entities)
                if me is not None and _cut(units, *s).lower() == me]
    commands = [s for s in _entities(message, "bot_command", entities) if s[0] == 0]
    asked = False
    if commands:
        name, _, target = _cut(units, *commands[0]).lstrip("/").partition("@")
        name = name.lower()
        if target and not private and (me is None or f"@{target}".lower() != me):
            return Ignored("command for another bot")
        if name in COMMANDS:
            return Command(name, chat_id, topic, conversation, user, delivery_id)
        if name != ASK:
            return Ignored("unknown command")
        asked = True
        mentions.append(commands[0])  # the "/ask" itself is not part of the question

    if not (private or asked or mentions or _replies_to_bot(message, bot_id)):
        return Ignored("group message not addressed to the bot")
    question = _without(units, mentions)
    if not question:
        return Ignored("empty question")
    reply_to = {"chat_id": chat_id, "message_thread_id": topic,
                "reply_to_message_id": message.get("message_id")}
    return Question(Inbound(PLATFORM, delivery_id, conversation, user, question, reply_to,
                            principals=(f"telegram:{chat_id}",)))
