"""Show an answer while it is being written: post early, edit at most once a second.

"Early" is half a second after the first words: a short answer is then usually whole and
goes out as one message, with no edit, while a long one still starts showing at once.

Where the platform shows drafts (:class:`Previews`: Telegram's ``sendMessageDraft`` in a
private chat), a growing answer shows as a draft, updated at most once a second, and is posted
once, whole; an answer that outgrows one message, or a refused draft, is posted and edited.

Where the platform streams natively (:class:`Streams`: Slack's ``chat.startStream``), a
growing answer's first message is a stream instead: what the answer gains is appended, at most
once a second, and the stream is stopped with the last words. Text that changes rather than
grows (a withdrawn answer, an apology, a stream the platform gave up on) ends the stream and
the message is edited whole, as elsewhere. A refused start falls back to post-then-edit.

Every post is first claimed in the outbox (shared/queue/outbox.py), so a job that runs again
after a failure edits the messages it posted instead of posting them twice. A post whose fate
is unknown (the request went out, no answer came back) is looked for on the platform where it
can be (:class:`Finds`: Slack): found, it is edited; not found once it could no longer land,
it is posted. Elsewhere, and for a stream's start, which carries nothing to be found by, it is
left rather than risk a second copy.

The text is split at the platform's limit (functions/worker/split.py); while the answer grows,
the last part carries a " …" to show that more is coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import cast

from functions.messaging import PlatformError, ReplyChannel
from functions.worker.capabilities import Deletes, Finds, FixedRefs, Previews, Streams
from functions.worker.split import split_message
from shared.queue.outbox import Outbox

MORE = " …"
WITHDRAWN = "—"  # what a withdrawn answer's later parts say where they cannot be deleted
FINAL_WAIT_S = 30.0  # the longest Retry-After a last edit or a stream's stop waits out in place


def _refused(exc: PlatformError) -> bool:
    """The platform said no, and did nothing: the same text may go another way."""
    return not exc.sent and (exc.permanent or exc.status == 429)


def _rate_limited(exc: PlatformError) -> bool:
    return not exc.sent and exc.status == 429


async def _patiently(call: Callable[[], Awaitable[None]], *, final: bool) -> None:
    """Run ``call``; when it is what makes an answer whole (``final``: the last edit, a
    stream's stop) and the platform rate-limits it, wait its Retry-After (up to
    :data:`FINAL_WAIT_S`) and run it once more, rather than fail the whole answer."""
    try:
        await call()
    except PlatformError as exc:
        wait = exc.retry_after or 1.0
        if not final or not _rate_limited(exc) or wait > FINAL_WAIT_S:
            raise
        await asyncio.sleep(wait)
        await call()


class ProgressiveReply:
    """One answer to one delivery (``delivery`` is ``platform:delivery_id``)."""

    def __init__(self, channel: ReplyChannel, outbox: Outbox, delivery: str, *,
                 interval_s: float = 1.0, first_after_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, patient: bool = True) -> None:
        """``patient``: a lost post not found yet is looked for again later (a later run);
        False on the job's last run, where it is posted at once: a possible second copy is
        better than the silence that waiting would end in."""
        self._patient = patient
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
        self._streaming: dict[int, str] = {}  # part -> what its open stream shows
        self._previews = isinstance(channel, Previews) and channel.can_preview()
        self._previewed = False  # a draft of this answer is showing

    @property
    def posted(self) -> bool:
        """Whether anything of this answer is on the platform (or may be)."""
        return bool(self._refs)

    @property
    def showing(self) -> bool:
        """Whether the answer shows in the chat: posted, streaming or as a draft."""
        return self.posted or self._previewed

    async def update(self, text: str) -> None:
        """The answer so far; posted or edited unless the last change is under a second old.
        Leading blanks go, as the whole answer's do (a stream can only grow at its end)."""
        text = text.lstrip()
        if not text:
            return
        if not self._refs:
            now = self._clock()
            if self._first_words_at is None:
                self._first_words_at = now
            if now - self._first_words_at < self._first_after:
                return
            if self._previews and await self._preview(text):
                return
        await self._show(self._parts(text, growing=True), final=False)

    async def _preview(self, text: str) -> bool:
        """Show the answer so far as a draft, at most once an interval; False when it is to be
        posted instead (it outgrew one message, or the platform refused the draft)."""
        channel = cast(Previews, self._channel)
        if len(split_message(text, self._channel.max_length, self._channel.length)) > 1:
            self._previews = False  # too long for one draft: post the parts as they fill
            return False
        if self._wait(0) > 0:
            return True
        try:
            await channel.preview(text)
        except PlatformError as exc:
            if _rate_limited(exc):
                self._wait_out(0, exc)  # the next draft after the platform's wait
                return True
            if _refused(exc):
                self._previews = False
                return False
            # A draft that may not have arrived: it is ephemeral, the next one replaces it.
        self._previewed = True
        self._changed_at[0] = self._clock()
        return True

    async def finish(self, text: str) -> None:
        """The whole answer: every part shown as it ends. Parts that an earlier, longer text
        showed (this run's, or an earlier run's of this job) are withdrawn, as by
        :meth:`replace`."""
        await self._final(self._parts(text, growing=False))

    async def replace(self, text: str) -> None:
        """Withdraw the answer shown so far: ``text`` (one short message) takes its place.

        The first message is edited into ``text`` (posted, if nothing was yet); the later
        parts of a long answer are deleted where the channel can, else edited into a dash.
        """
        await self._final([text])

    async def _final(self, parts: list[str]) -> None:
        # An earlier run of this job may have shown more parts than this run has touched.
        for part, ref in (await self._outbox.parts(self._delivery)).items():
            ref = ref or self._fixed_ref(part)
            if ref is None and part < len(parts):
                continue  # fate unknown: _post looks for it (where the platform can tell)
            self._refs.setdefault(part, ref)
        await self._show(parts, final=True)
        later = sorted((p, ref) for p, ref in self._refs.items()
                       if p >= len(parts) and ref is not None)
        for part, ref in later:
            if isinstance(self._channel, Deletes) and part not in self._streaming:
                await self._channel.delete(ref, part)
                await self._outbox.deleted(self._delivery, part)
                del self._refs[part]
            else:
                await self._show_part(part, ref, WITHDRAWN, final=True)

    def _fixed_ref(self, part: int) -> str | None:
        channel = self._channel
        return channel.fixed_ref(part) if isinstance(channel, FixedRefs) else None

    async def end_streams(self) -> None:
        """Stop the streams this answer left open, keeping what they show: it failed and
        will be tried again (that run edits the message whole) or not at all. Best effort:
        a stream that cannot be stopped now is stopped by the next run, or expires."""
        channel = cast(Streams, self._channel)  # only a Streams channel has open streams
        for part in list(self._streaming):
            ref = self._refs.get(part)
            del self._streaming[part]
            if ref is not None:
                with contextlib.suppress(PlatformError):
                    await channel.stop_stream(ref, "")

    def _streams(self, part: int) -> Streams | None:
        """The channel, when part ``part`` is (or would start as) a stream."""
        channel = self._channel
        if part in self._streaming or (
                part == 0 and part not in self._refs and isinstance(channel, Streams)
                and channel.can_stream()):
            return cast(Streams, channel)
        return None

    def _parts(self, text: str, *, growing: bool) -> list[str]:
        channel = self._channel
        parts = split_message(text, channel.max_length, channel.length)
        if growing and self._streams(len(parts) - 1) is None:
            parts[-1] = self._growing(parts[-1])  # a stream shows by itself that more comes
        return parts

    def _growing(self, text: str) -> str:
        """``text`` marked as still growing, where the mark fits."""
        channel = self._channel
        fits = channel.length(text + MORE) <= channel.max_length
        return text + MORE if fits else text

    async def _show(self, parts: list[str], *, final: bool) -> None:
        for part, text in enumerate(parts):
            if part not in self._refs and await self._post(part, text, final=final):
                continue
            ref = self._refs[part]
            if ref is not None:
                await self._show_part(part, ref, text, final=final)

    def _wait(self, part: int) -> float:
        """Seconds until part ``part`` may change again (at most once an interval)."""
        return self._changed_at.get(part, -1e9) + self._interval - self._clock()

    def _changed(self, part: int, text: str) -> None:
        self._shown[part] = text
        self._changed_at[part] = self._clock()

    async def _show_part(self, part: int, ref: str, text: str, *, final: bool) -> None:
        """Edit a posted part into ``text``; unless ``final``, only if a second has passed."""
        if part in self._streaming:
            await self._stream_part(part, ref, text, final=final)
            return
        if self._shown.get(part) == text:
            return
        wait = self._wait(part)
        if wait > 0:
            if not final:
                return
            await asyncio.sleep(wait)
        try:
            await _patiently(lambda: self._channel.edit(ref, text, part), final=final)
        except PlatformError as exc:
            if final or not _rate_limited(exc):
                raise
            self._wait_out(part, exc)  # an edit on the way: a later one shows the text
            return
        self._changed(part, text)

    def _wait_out(self, part: int, exc: PlatformError) -> None:
        """Change part ``part`` again only after the platform's Retry-After (at least the
        interval): an update in between is skipped, and the next change shows it."""
        self._changed_at[part] = self._clock() - self._interval + max(
            exc.retry_after or 0.0, self._interval)

    async def _stream_part(self, part: int, ref: str, text: str, *, final: bool) -> None:
        """Append what a streamed part gained; stop it when ``final``. Text that is not the
        streamed text grown (a withdrawal, an apology, a split that moved) ends the stream, and
        the message is edited whole instead."""
        channel = cast(Streams, self._channel)
        streamed = self._streaming[part]
        if not final and (text == streamed or self._wait(part) > 0):
            return  # nothing new, or too soon: a later update or the end shows it
        grown = text.startswith(streamed)
        try:
            if grown and not final:
                await channel.append_stream(ref, text[len(streamed):])
                self._streaming[part] = text
                self._changed(part, text)
                return
            added = text[len(streamed):] if grown else ""
            await _patiently(lambda: channel.stop_stream(ref, added), final=True)
        except PlatformError as exc:
            if not _refused(exc):
                raise
            if not final and _rate_limited(exc):
                self._wait_out(part, exc)  # a later update appends what this one could not
                return
            grown = False  # the stream is gone (expired, or given up on): edit it whole
        del self._streaming[part]
        if grown:
            self._changed(part, text)
            return
        self._shown[part] = streamed
        await self._show_part(part, ref, text, final=final)

    async def _post(self, part: int, text: str, *, final: bool = False) -> bool:
        """Post ``part`` unless the outbox says it was posted; True if this call posted it.
        A growing answer's first part starts as a stream where the channel offers one."""
        streams = None if final else self._streams(part)
        claim = await self._outbox.claim(self._delivery, part, stream=streams is not None)
        if not claim.new:
            # Posted by an earlier run of this job: edit it. If that post's fate is unknown,
            # look for it; where it cannot be looked for, leave it rather than risk a second
            # copy (unless posting it is an edit).
            ref = claim.ref or self._fixed_ref(part)
            if ref is None and not claim.stream:
                try:
                    ref = await self._find(part, claim.age_s)
                except _Missing:
                    if not final and streams is not None:
                        text = self._growing(text)  # posted, not streamed: mark it growing
                    return await self._send(part, text, None)
            self._refs[part] = ref
            return False
        return await self._send(part, text, streams)

    async def _find(self, part: int, age_s: float) -> str | None:
        """Part ``part``'s ref, found on the platform and recorded; None when it cannot be
        told. Raises :class:`_Missing` when the platform does not show it (post it now) and
        PlatformError when the platform cannot say now, or the post could still appear."""
        channel = self._channel
        if not isinstance(channel, Finds):
            return None
        try:
            ref = await channel.find(part)
        except LookupError:
            return None
        if ref is None:
            if self._patient and age_s < channel.settle_s:
                # Posted now, a late post could still land beside it: look again later.
                raise PlatformError(f"part {part}'s post is not found yet", sent=True,
                                    retry_after=channel.settle_s - age_s)
            raise _Missing
        await self._outbox.sent(self._delivery, part, ref)
        return ref

    async def _send(self, part: int, text: str, streams: Streams | None) -> bool:
        """Post (or start as a stream) the claimed part ``part``, and record it."""
        try:
            ref = None
            if streams is not None:
                try:
                    ref = await streams.start_stream(text)
                except PlatformError as exc:
                    if not _refused(exc):
                        raise
                    streams = None  # refused, nothing shown: post and edit instead
                    text = self._growing(text)
                    await self._outbox.posting(self._delivery, part)
            if ref is None:
                ref = await self._channel.post(text, part)
        except PlatformError as exc:
            if not exc.sent:
                await self._outbox.not_sent(self._delivery, part)
            raise
        await self._outbox.sent(self._delivery, part, ref)
        self._refs[part] = ref
        if streams is not None:
            self._streaming[part] = text
        self._changed(part, text)
        return True


class _Missing(Exception):
    """A post whose fate was unknown is not on the platform: it was never made."""
