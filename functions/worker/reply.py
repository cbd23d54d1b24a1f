"""Show an answer while it is being written: post early, edit at most once a second.

"Early" is half a second after the first words: a short answer is then usually whole and
goes out as one message, with no edit, while a long one still starts showing at once.

Every post is first claimed in the outbox (shared/outbox.py), so a job that runs again after a
failure edits the messages it posted instead of posting them twice. The text is split at the
platform's limit (functions/worker/split.py); while the answer grows, the last part carries a
" …" to show that more is coming.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from functions.messaging import PlatformError, ReplyChannel
from functions.worker.split import split_message
from shared.outbox import Outbox

MORE = " …"
WITHDRAWN = "—"  # what a withdrawn answer's later parts say where they cannot be deleted


@runtime_checkable
class Deletes(Protocol):
    """A reply channel that can also delete a message it posted."""

    async def delete(self, ref: str, part: int) -> None: ...


class ProgressiveReply:
    """One answer to one delivery (``delivery`` is ``platform:delivery_id``)."""

    def __init__(self, channel: ReplyChannel, outbox: Outbox, delivery: str, *,
                 interval_s: float = 1.0, first_after_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._channel = channel
        self._outbox = outbox
        self._delivery = delivery
        self._interval = interval_s
        self._first_after = first_after_s
        self._clock = clock
        self._first_words_at: float | None = None
        self._refs: dict[int, str | None] = {}  # part -> message id (None: posted, id unknown)
        self._shown: dict[int, str] = {}
        self._changed_at: dict[int, float] = {}

    @property
    def posted(self) -> bool:
        """Whether anything of this answer is on the platform (or may be)."""
        return bool(self._refs)

    async def update(self, text: str) -> None:
        """The answer so far; posted or edited unless the last change is under a second old."""
        if not text.strip():
            return
        if not self._refs:
            now = self._clock()
            if self._first_words_at is None:
                self._first_words_at = now
            if now - self._first_words_at < self._first_after:
                return
        await self._show(self._parts(text, growing=True), final=False)

    async def finish(self, text: str) -> None:
        """The whole answer: every part shown as it ends."""
        await self._show(self._parts(text, growing=False), final=True)

    async def replace(self, text: str) -> None:
        """Withdraw the answer shown so far: ``text`` (one short message) takes its place.

        The first message is edited into ``text`` (posted, if nothing was yet); the later
        parts of a long answer are deleted where the channel can, else edited into a dash.
        """
        await self._show([text], final=True)
        later = sorted((p, ref) for p, ref in self._refs.items() if p > 0 and ref is not None)
        for part, ref in later:
            if isinstance(self._channel, Deletes):
                await self._channel.delete(ref, part)
                del self._refs[part]
            else:
                await self._show_part(part, ref, WITHDRAWN, final=True)

    def _parts(self, text: str, *, growing: bool) -> list[str]:
        channel = self._channel
        parts = split_message(text, channel.max_length, channel.length)
        if growing and channel.length(parts[-1] + MORE) <= channel.max_length:
            parts[-1] += MORE
        return parts

    async def _show(self, parts: list[str], *, final: bool) -> None:
        for part, text in enumerate(parts):
            if part not in self._refs and await self._post(part, text):
                continue
            ref = self._refs[part]
            if ref is not None:
                await self._show_part(part, ref, text, final=final)

    async def _show_part(self, part: int, ref: str, text: str, *, final: bool) -> None:
        """Edit a posted part into ``text``; unless ``final``, only if a second has passed."""
        if self._shown.get(part) == text:
            return
        wait = self._changed_at.get(part, -1e9) + self._interval - self._clock()
        if wait > 0:
            if not final:
                return
            await asyncio.sleep(wait)
        await self._channel.edit(ref, text, part)
        self._shown[part] = text
        self._changed_at[part] = self._clock()

    async def _post(self, part: int, text: str) -> bool:
        """Post ``part`` unless the outbox says it was posted; True if this call posted it."""
        claim = await self._outbox.claim(self._delivery, part)
        if not claim.new:
            # Posted by an earlier run of this job: edit it (or, if that post's fate is
            # unknown, leave it rather than risk a second copy).
            self._refs[part] = claim.ref
            return False
        try:
            ref = await self._channel.post(text, part)
        except PlatformError as exc:
            if not exc.sent:
                await self._outbox.not_sent(self._delivery, part)
            raise
        await self._outbox.sent(self._delivery, part, ref)
        self._refs[part] = ref
        self._shown[part] = text
        self._changed_at[part] = self._clock()
        return True
