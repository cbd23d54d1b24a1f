"""What a reply channel may do besides post and edit, each a protocol checked at run time.

functions/messaging.py's ``ReplyChannel`` is what every platform's channel does; a channel
that can do more says so by having these methods, and the progressive reply
(functions/worker/reply.py) uses what it finds: deleting a message (:class:`Deletes`), a first
message that exists before it is posted (:class:`FixedRefs`: Discord), streaming
(:class:`Streams`: Slack), looking a lost post up (:class:`Finds`: Slack) and drafts
(:class:`Previews`: Telegram). Kept apart from the reply's workings: these are what a
platform's client offers it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Deletes(Protocol):
    """A reply channel that can also delete a message it posted."""

    async def delete(self, ref: str, part: int) -> None: ...


@runtime_checkable
class FixedRefs(Protocol):
    """A reply channel whose first post fills a message that already exists (Discord's
    deferred answer): its ref is known before it is posted, and posting it again is an edit."""

    def fixed_ref(self, part: int) -> str | None:
        """Part ``part``'s ref before it is posted, when it has one."""


@runtime_checkable
class Streams(Protocol):
    """A reply channel that can also stream a message as it is written."""

    def can_stream(self) -> bool:
        """Whether to offer this answer as a stream at all."""

    async def start_stream(self, text: str) -> str:
        """Start a streamed message with ``text``; return its ref (as :meth:`post` does)."""

    async def append_stream(self, ref: str, text: str) -> None:
        """Add ``text`` to the end of the streamed message ``ref``."""

    async def stop_stream(self, ref: str, text: str) -> None:
        """End the streamed message ``ref``, adding ``text`` (possibly empty) first."""


@runtime_checkable
class Finds(Protocol):
    """A reply channel that can tell whether a post of this answer shows on the platform."""

    # How long after a post's claim the platform could still make it (the request may still
    # be on its way or in the works): not found sooner, it is looked for again later.
    settle_s: float

    async def find(self, part: int) -> str | None:
        """The ref of this answer's part ``part`` if the platform shows it, None if not.

        Raises PlatformError when the platform cannot say now (the job runs again later),
        LookupError when it cannot be told at all (the part is then left as it is)."""


@runtime_checkable
class Previews(Protocol):
    """A reply channel that can show an answer as an ephemeral draft while it is written."""

    def can_preview(self) -> bool:
        """Whether to show this answer as a draft at all."""

    async def preview(self, text: str) -> None:
        """Show ``text`` as the draft; the answer's first post takes its place."""
