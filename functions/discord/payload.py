"""What a verified Discord interaction asks for, as plain functions over its JSON dict.

Field names follow Discord's Interaction object:
https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object

The interaction ``token`` (valid 15 minutes) lets anyone holding it post and edit messages as
the bot in that channel: it travels inside ``Inbound.reply_to`` to the worker and must never be
logged. No :class:`Ignored` reason quotes any part of the payload for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.messaging import Inbound

PLATFORM = "discord"

# https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-interaction-type
PING = 1
APPLICATION_COMMAND = 2
# https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-types
CHAT_INPUT = 1
# https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-type
STRING_OPTION = 3


@dataclass(frozen=True)
class Ping:
    """Discord checking the endpoint: answer ``{"type": 1}``."""


@dataclass(frozen=True, repr=False)
class Ask:
    """``/ask``: a question for the model, ready to be queued for the worker."""

    inbound: Inbound

    def __repr__(self) -> str:
        # Inbound's own repr shows reply_to, and with it the interaction token.
        return (f"Ask(delivery_id={self.inbound.delivery_id!r}, "
                f"conversation={self.inbound.conversation!r})")


@dataclass(frozen=True)
class Reset:
    """``/reset``: forget the conversation this person has with the bot here."""

    conversation: str
    user: str
    delivery_id: str


@dataclass(frozen=True)
class Forget:
    """``/forget``: delete everything stored about this person, everywhere."""

    user: str
    delivery_id: str


@dataclass(frozen=True)
class Ignored:
    """Nothing to do; ``reason`` is safe to log (it quotes nothing from the payload)."""

    reason: str


Classified = Ping | Ask | Reset | Forget | Ignored


def _snowflake(value: Any) -> str | None:
    """An id as Discord sends it (a string of digits); ints are accepted, anything else not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def invoking_user(interaction: dict[str, Any]) -> dict[str, Any]:
    """The person who triggered the interaction: ``member.user`` in a guild, ``user`` in a DM."""
    member = _dict(interaction.get("member"))
    return _dict(member.get("user")) or _dict(interaction.get("user"))


def channel_id(interaction: dict[str, Any]) -> str | None:
    """The channel it came from; ``channel_id`` is deprecated in favour of ``channel.id``."""
    return (_snowflake(interaction.get("channel_id"))
            or _snowflake(_dict(interaction.get("channel")).get("id")))


def principals(interaction: dict[str, Any]) -> tuple[str, ...]:
    """Who asks, as knowledge-base grants name it: the guild's channel, then the guild; or
    any DM with the bot."""
    guild, channel = _snowflake(interaction.get("guild_id")), channel_id(interaction)
    if guild is None:
        return ("discord:dm",)
    return (f"discord:{guild}:{channel}", f"discord:{guild}") if channel else (
        f"discord:{guild}",)


def conversation_key(interaction: dict[str, Any], user_id: str) -> str | None:
    """One conversation per person and channel in a guild, one per DM channel elsewhere."""
    channel = channel_id(interaction)
    if channel is None:
        return None
    guild = _snowflake(interaction.get("guild_id"))
    if guild is not None:
        return f"{guild}:{channel}:{user_id}"
    return f"dm:{channel}"


def string_option(data: dict[str, Any], name: str) -> str | None:
    """The value of the top-level string option ``name``, if the command carries one."""
    options = data.get("options")
    if not isinstance(options, list):
        return None
    for option in options:
        if (isinstance(option, dict) and option.get("name") == name
                and option.get("type") == STRING_OPTION and isinstance(option.get("value"), str)):
            value: str = option["value"]
            return value
    return None


def classify(interaction: dict[str, Any]) -> Classified:
    """Sort a verified interaction into what the webhook should do with it."""
    kind = interaction.get("type")
    if kind == PING:
        return Ping()
    if kind != APPLICATION_COMMAND:
        shown = kind if isinstance(kind, int) and not isinstance(kind, bool) else "unknown"
        return Ignored(f"interaction type {shown} is not handled")
    data = _dict(interaction.get("data"))
    if data.get("type", CHAT_INPUT) != CHAT_INPUT:
        return Ignored("only slash commands are handled")

    user = invoking_user(interaction)
    if user.get("bot") is True:
        # Bots cannot run slash commands today; refusing them anyway rules out reply loops.
        return Ignored("the invoking user is a bot")
    user_id = _snowflake(user.get("id"))
    delivery_id = _snowflake(interaction.get("id"))
    if user_id is None or delivery_id is None:
        return Ignored("the interaction has no user id or no id")
    conversation = conversation_key(interaction, user_id)
    if conversation is None:
        return Ignored("the interaction has no channel")

    name = data.get("name")
    if name == "reset":
        return Reset(conversation=conversation, user=user_id, delivery_id=delivery_id)
    if name == "forget":
        return Forget(user=user_id, delivery_id=delivery_id)
    if name != "ask":
        return Ignored("unknown command")

    question = (string_option(data, "question") or "").strip()
    if not question:
        return Ignored("empty question")
    application_id = _snowflake(interaction.get("application_id"))
    token = interaction.get("token")
    if application_id is None or not isinstance(token, str) or not token:
        return Ignored("the interaction has no application id or no token")
    return Ask(Inbound(
        platform=PLATFORM,
        delivery_id=delivery_id,
        conversation=conversation,
        user=user_id,
        text=question,
        reply_to={"application_id": application_id, "token": token},
        principals=principals(interaction),
    ))
