"""What every chat platform hands the worker, and what the worker asks of every platform.

A platform's webhook turns a verified delivery into an :class:`Inbound` (a JSON-able job
payload); its client turns a stored ``reply_to`` back into a :class:`ReplyChannel`. The worker
knows only these two shapes, never which platform asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from shared.errors import UpstreamError

log = logging.getLogger(__name__)

ANSWER_JOB = "answer"  # the job kind a webhook queues and the worker answers
FORGET_JOB = "forget"  # a person asked the bot to forget them (Slack: posted by the worker)
FORGOT_YOU = "Done: I deleted everything I had stored about you."
FORGOT_YOU_ES = "Hecho: he borrado todo lo que tenía guardado sobre ti."


def forgot_you(asked: str) -> str:
    """The one-line confirmation, in Spanish when they asked in Spanish ("olvídame")."""
    return FORGOT_YOU_ES if "olv" in asked.lower() else FORGOT_YOU


@dataclass(frozen=True)
class Inbound:
    """One message a platform delivered that deserves an answer."""

    platform: str  # "slack" | "telegram" | "discord"
    delivery_id: str  # the platform's id for this delivery: the de-duplication key
    conversation: str  # which stored conversation it continues (platform-specific key)
    user: str  # the platform's id of the person asking (limits are per person)
    text: str  # the question, with the bot's own mention removed
    # Where the answer goes; may hold a secret (Discord's interaction token): not in reprs.
    reply_to: dict[str, Any] = field(default_factory=dict, repr=False)
    # Who asks, as knowledge-base grants name it, most specific first ("slack:T1:C2",
    # "slack:T1"): the collections granted to any of them are searched for the answer.
    principals: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "delivery_id": self.delivery_id,
                "conversation": self.conversation, "user": self.user, "text": self.text,
                "reply_to": self.reply_to, "principals": list(self.principals)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inbound:
        return cls(**{k: data[k] for k in ("platform", "delivery_id", "conversation", "user",
                                           "text", "reply_to")},
                   principals=tuple(data.get("principals", ())))


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units: how Telegram counts (and, cautiously, Discord); an emoji
    outside the Basic Multilingual Plane counts 2."""
    return len(text.encode("utf-16-le")) // 2


class PlatformError(UpstreamError):
    """A call to a platform's API failed.

    ``sent`` says whether the platform may have acted on it anyway: False when it answered
    with an error or could not be reached (safe to send again), True when the request went out
    and no answer came back (a timeout, a dropped connection), so sending again could post
    twice. ``retry_after`` is the platform's own wait in seconds (a 429), when it gave one.
    ``permanent`` says that trying again cannot help (a bad token, an unknown channel, an
    expired interaction); by default, any 4xx status but 429.
    """

    def __init__(self, message: str, *, sent: bool = False, status: int | None = None,
                 retry_after: float | None = None, permanent: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent
        self.status = status
        self.retry_after = retry_after
        if permanent is None:
            permanent = status is not None and 400 <= status < 500 and status != 429
        self.permanent = permanent


class ReplyChannel(Protocol):
    """Where one answer goes: a Slack thread, a Telegram chat, a Discord interaction."""

    max_length: int  # the most a message may hold, in the platform's own units

    def length(self, text: str) -> int:
        """``text``'s length as the platform counts it against :attr:`max_length`."""

    async def typing(self) -> None:
        """Show that an answer is being written, where the platform can (else do nothing)."""

    async def post(self, text: str, part: int) -> str:
        """Post part ``part`` (0 first) of the answer; return the platform's message id."""

    async def edit(self, ref: str, text: str, part: int) -> None:
        """Replace the text of a message this channel posted (``ref`` from :meth:`post`)."""

    def sources(self, citations: list[str]) -> str:
        """The documents an answer drew on, as a footer in the platform's own markup."""


@runtime_checkable
class Expires(Protocol):
    """A reply channel the platform closes at a known time (Discord: an interaction's token
    lives 15 minutes): an answer that cannot be shown by then is not worth writing."""

    expires_at: float | None  # Unix time; None: unknown


def plain_sources(citations: list[str], bold: tuple[str, str] = ("", "")) -> str:
    """``Sources:`` and one numbered line per citation; ``bold`` wraps the label."""
    lines = [f"{bold[0]}Sources:{bold[1]}"]
    lines += [f"[{n}] {citation}" for n, citation in enumerate(citations, 1)]
    return "\n".join(lines)


class Refusals:
    """Where a platform refused a way of answering (``what``: a Slack stream, a Telegram
    draft), keyed by channel or chat: that way is not offered there again for ``for_s``
    seconds. Per process, and small: expired keys go whenever another is added."""

    def __init__(self, what: str, for_s: float) -> None:
        self.what = what
        self.for_s = for_s
        self._until: dict[Hashable, float] = {}

    def refused(self, key: Hashable) -> bool:
        return self._until.get(key, 0.0) > time.monotonic()

    def note(self, key: Hashable, exc: PlatformError) -> None:
        """Remember ``key`` when ``exc`` is a refusal: answered, and for good (a rate limit or
        a lost answer says nothing about whether the platform allows it there)."""
        if not exc.sent and exc.permanent:
            log.info("%s was refused (%s); posting and editing there for %.0f minutes",
                     self.what, exc.message, self.for_s / 60)
            self.remember(key)

    def remember(self, key: Hashable) -> None:
        now = time.monotonic()
        for expired in [k for k, until in self._until.items() if until <= now]:
            del self._until[expired]
        self._until[key] = now + self.for_s

    def forget(self, key: Hashable) -> None:
        self._until.pop(key, None)
