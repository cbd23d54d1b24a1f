"""Answer one message from any platform: history → the answer pipeline (functions/pipeline.py)
→ a reply that grows as the model writes → store the turn.

This is the business logic of the bots; it never knows which platform asked. The platform
comes in as an :class:`Inbound` and a :class:`ReplyChannel`; the job runner decides, from the
errors raised here, whether to try again later (:class:`Retry`) or give up (:class:`GiveUp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from functions.knowledge import Knowledge
from functions.messaging import Expires, Inbound, PlatformError, ReplyChannel
from functions.model_client import ModelClient, ModelServerError
from functions.moderation import WITHHELD, Moderation, Trip, refusal
from functions.pipeline import Answer, Asked, Ending, Found, How, Pipeline
from functions.quotes import supporting
from functions.sse import StreamRecorder
from functions.worker.reply import ProgressiveReply
from shared.chat import WindowSplit, assemble, kept_history
from shared.conversations import Conversations
from shared.errors import JobOutcome, PromptTooLong, StorageError
from shared.knowledge.search import Passage
from shared.queue.outbox import Outbox
from shared.settings import Settings

log = logging.getLogger(__name__)

APOLOGY = "Sorry, I can't answer right now. Please try again in a few minutes."
TOO_LONG = "That message is too long for me to answer. Could you shorten it?"
NO_ANSWER = "I have no answer to that."
LIMITED = "You have used up your share of the assistant for now. Try again in {wait}."
LONG_WAIT_S = 60.0  # a limit that resets later than this is told to the user, not waited out
TYPING_EVERY_S = 4.0  # Telegram shows "typing…" for 5 s per call
EXPIRY_MARGIN_S = 60.0  # a reply window closing sooner than this: no answer could make it


class Retry(JobOutcome):
    """Run the job again after ``delay_s`` (unless it was the last attempt)."""

    def __init__(self, reason: str, delay_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class GiveUp(JobOutcome):
    """Do not run the job again; it is kept as failed with this reason."""


@dataclass
class Answerer:
    settings: Settings
    model: ModelClient
    conversations: Conversations
    outbox: Outbox
    knowledge: Knowledge | None = None
    moderation: Moderation | None = None  # None: built from the settings

    def __post_init__(self) -> None:
        db = self.knowledge.db if self.knowledge is not None else None
        self._moderation = self.moderation or Moderation(self.settings, self.model, db)
        self._pipeline = Pipeline.configured(self.settings, self._moderation, self.model)

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: doubling, with jitter, capped at a minute."""
        base: float = self.settings.job_backoff_s * 2 ** (attempt - 1)
        return min(60.0, base) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security

    async def answer(self, inbound: Inbound, channel: ReplyChannel, *, attempt: int,
                     last: bool, asked_at: datetime | None = None) -> None:
        """Answer ``inbound`` on ``channel``; raise :class:`Retry` or :class:`GiveUp`.
        ``asked_at``: when the message was queued; if its author asked to be forgotten since,
        it is answered but not stored (shared/privacy.py)."""
        expires_at = channel.expires_at if isinstance(channel, Expires) else None
        if expires_at is not None and time.time() > expires_at - EXPIRY_MARGIN_S:
            # The platform no longer takes this answer (a queue backed up for longer than a
            # Discord interaction lives): asking the model would only add to the backlog.
            raise GiveUp("the platform's time to reply ran out while the message waited"
                         f" (it closed {_duration(max(0.0, time.time() - expires_at))} ago)")
        interval = self.settings.edit_interval_s
        reply = ProgressiveReply(channel, self.outbox, f"{inbound.platform}:{inbound.delivery_id}",
                                 interval_s=interval, first_after_s=interval / 2,
                                 patient=not last)
        try:
            stored = await self._stored(inbound)
            if stored is not None:
                # An earlier run answered and stored it, then stopped short of ending the job
                # (a crash, a lost database): show that answer whole again, ask nothing anew.
                await reply.finish(stored)
                return
            await self._answer(inbound, channel, reply, asked_at)
        except PromptTooLong:
            await reply.finish(TOO_LONG)
        except ModelServerError as exc:
            wait = _platform_wait(exc)
            if exc.status == 429 and wait > LONG_WAIT_S:
                # The person's request limit or token budget: waiting it out could take hours.
                await reply.finish(LIMITED.format(wait=_duration(wait)))
            elif exc.code == "context_length_exceeded":
                await reply.finish(TOO_LONG)
            else:
                raise await self._verdict(exc, reply, attempt, last) from None
        except (PlatformError, StorageError) as exc:
            raise await self._verdict(exc, reply, attempt, last) from None

    async def _verdict(self, exc: Exception, reply: ProgressiveReply, attempt: int,
                       last: bool) -> Exception:
        reason = _reason(exc)
        permanent = _permanent(exc)
        if permanent and isinstance(exc, PlatformError):
            # The platform refused for good (a revoked token, a channel gone): nothing more
            # can be said there; a stream it left open stops, if it still can.
            await reply.end_streams()
            return GiveUp(reason)
        if permanent or last:
            # No attempt is left, or none could help (the model server refuses this request):
            # the person is told, rather than left with silence or half an answer.
            too_long = isinstance(exc, ModelServerError) and exc.status == 413
            await self._apologize(reply, TOO_LONG if too_long else APOLOGY)
            return GiveUp(reason if permanent else f"{reason} (after {attempt} attempts)")
        # The answer stops here: a stream it left open stops too, showing what it has (a
        # retry edits it whole), instead of looking alive until the platform expires it.
        await reply.end_streams()
        return Retry(reason, max(self.backoff(attempt), _platform_wait(exc)))

    async def _stored(self, inbound: Inbound) -> str | None:
        if self.settings.conversation_retention_days == 0:
            return None  # nothing is stored: nothing to find
        return await self.conversations.answer_to(inbound.platform, inbound.conversation,
                                                  inbound.delivery_id)

    async def _answer(self, inbound: Inbound, channel: ReplyChannel,
                      reply: ProgressiveReply, asked_at: datetime | None) -> None:
        """The answer pipeline (functions/pipeline.py), shown as a message that grows."""
        sub = f"{inbound.platform}:{inbound.user}"
        typing = asyncio.create_task(_keep_typing(channel, reply))
        query: tuple[str, np.ndarray] | None = None

        async def search() -> Found | None:
            nonlocal query
            if self.knowledge is None:
                return None
            query = await self.knowledge.query_vector(inbound.text, sub=sub)
            if not inbound.principals:
                return None
            found = await self.knowledge.lookup(inbound.principals, inbound.text, query)
            return Found([c.name for c in found.collections], found.passages)

        try:
            answer = await self._pipeline.begin(Asked(inbound.text, inbound.text, sub,
                                                      tuple(inbound.principals)))
            if answer.refused is not None:
                await self._withhold(inbound, reply, answer.refused, None, asked_at)
                return
            known = await answer.ground(search, whom="this chat")
            if known is not None:
                text = known.text  # nothing about it in the documents: "I don't know"
            else:
                ending = await self._stream(answer, await self._prompt(inbound, answer, query),
                                            reply)
                if ending.how == How.WITHHELD:
                    assert ending.trip is not None
                    await self._withhold(inbound, reply, ending.trip, query, asked_at)
                    return
                text = ending.text or NO_ANSWER
                if answer.passages:  # each source, with what supports the answer
                    text += "\n\n" + channel.sources(_citations(
                        answer.passages, ending.text if ending.quotes_sources else None,
                        inbound.text))
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        await reply.finish(text)
        await self._store(inbound, inbound.text, text, query[1] if query is not None else None,
                          asked_at)

    async def _store(self, inbound: Inbound, question: str, answer: str,
                     embedding: np.ndarray | None, asked_at: datetime | None) -> bool:
        """Store the exchange; False when its author asked to be forgotten since
        ``asked_at`` (then nothing about it may be kept). With no history kept at all, True
        without asking: only a withheld message needs to know (see :meth:`_withhold`)."""
        if self.settings.conversation_retention_days == 0:
            return True  # CHARLA_CONVERSATION_RETENTION_DAYS=0: no history is kept at all
        stored = await self.conversations.add_exchange(
            inbound.platform, inbound.conversation, delivery_id=inbound.delivery_id,
            author=inbound.user, question=question, answer=answer, embedding=embedding,
            asked_at=asked_at)
        if not stored:
            log.info("%s delivery %s answered, not stored: its author asked to be forgotten"
                     " since", inbound.platform, inbound.delivery_id)
        return stored

    async def _prompt(self, inbound: Inbound, answer: Answer,
                      query: tuple[str, np.ndarray] | None) -> Callable[[float], dict[str, Any]]:
        """What asks the model, by the scale of token estimates: recent turns that fit,
        older ones recalled by meaning, then the message with its passages."""
        settings = self.settings
        turns = await self.conversations.recent_turns(
            inbound.platform, inbound.conversation, limit=settings.history_turns)
        history = [t.message for t in turns]
        asked = [answer.lay_out({"role": "user", "content": inbound.text})]
        split = WindowSplit(settings.context_window, settings.bot_max_tokens)
        memory: list[tuple[str, str]] = []
        if query is not None and turns:
            prompt = assemble(system_prompt=settings.system_prompt, history=history,
                              asked=asked, split=split)
            kept = kept_history(prompt, asked=len(asked), memory=False)
            oldest_kept = turns[len(turns) - kept].id if kept else turns[-1].id + 1
            memory = await self.conversations.recall(
                inbound.platform, inbound.conversation, query[1], before_id=oldest_kept,
                max_distance=settings.kb_max_distance)

        def body(scale: float) -> dict[str, Any]:
            messages = assemble(system_prompt=settings.system_prompt, history=history,
                                asked=asked, split=split, memory=memory, scale=scale)
            return {"messages": messages, "max_tokens": settings.bot_max_tokens,
                    "stream": True, "stream_options": {"include_usage": True}}

        return body

    async def _withhold(self, inbound: Inbound, reply: ProgressiveReply, trip: Trip,
                        query: tuple[str, np.ndarray] | None,
                        asked_at: datetime | None) -> None:
        """The refusal in place of the answer; the turn stored without what was withheld."""
        refused = refusal(inbound.text)
        await reply.replace(refused)
        if trip.stage == "input":
            kept = await self._store(inbound, WITHHELD, refused, None, asked_at)
        else:
            kept = await self._store(inbound, inbound.text, refused,
                                     query[1] if query is not None else None, asked_at)
        if not kept or (self.settings.conversation_retention_days == 0
                        and await self.conversations.forgotten_since(
                            inbound.platform, inbound.user, asked_at)):
            return  # its author asked to be forgotten since: no event about them either
        principal = inbound.principals[0] if inbound.principals else inbound.platform
        await self._moderation.record(trip, platform=inbound.platform, principal=principal,
                                     subject=f"{inbound.platform}:{inbound.user}")

    async def _stream(self, answer: Answer, body: Callable[[float], dict[str, Any]],
                      reply: ProgressiveReply) -> Ending:
        """Ask the model and show the answer as it grows, as far as it was checked."""
        _, events, first = await answer.ask(body, stream=True)
        assert events is not None
        recorder = StreamRecorder(forward_usage=False)
        async for step in answer.stream(events, recorder, first=first, retractable=True):
            if not (step.end or step.stopped):  # what was checked: the rest waits
                await reply.update(recorder.answer[:step.shown].rstrip())
        assert answer.ending is not None
        return answer.ending

    async def _apologize(self, reply: ProgressiveReply, text: str = APOLOGY) -> None:
        try:
            await reply.finish(text)
        except (PlatformError, StorageError) as exc:
            log.warning("could not send the apology either: %s", _reason(exc))


async def _keep_typing(channel: ReplyChannel, reply: ProgressiveReply) -> None:
    """Show "typing…" until the first words show (posted, streamed or as a draft)."""
    while not reply.showing:
        try:
            await channel.typing()
        except PlatformError:
            return
        await asyncio.sleep(TYPING_EVERY_S)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ModelServerError):
        return f"model server: {exc.status} {exc.message}"
    if isinstance(exc, PlatformError):
        return f"platform: {exc.message}"
    return f"database: {exc}"


def _permanent(exc: Exception) -> bool:
    """Errors that another attempt cannot fix."""
    if isinstance(exc, PlatformError):
        return exc.permanent
    if isinstance(exc, ModelServerError):
        return exc.status in (400, 401, 403, 413)
    return False


def _citations(passages: Sequence[Passage], answer: str | None = None,
               question: str = "") -> list[str]:
    """Each source once, in the order the passages ranked; given the ``answer``, each with
    the sentence of its passage that supports it, quoted."""
    lines: dict[str, str] = {}
    for passage in passages:
        if passage.citation in lines:
            continue
        quote = supporting(answer, question, passage) if answer is not None else None
        lines[passage.citation] = (f'{passage.citation}: "{quote}"' if quote
                                   else passage.citation)
    return list(lines.values())


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"{minutes} minute{'s' if minutes > 1 else ''}"
    return f"{round(minutes / 60)} hours"


def _platform_wait(exc: Exception) -> float:
    if isinstance(exc, PlatformError) and exc.retry_after:
        return float(exc.retry_after)
    if isinstance(exc, ModelServerError) and exc.retry_after:
        with contextlib.suppress(ValueError):
            return float(exc.retry_after)
    return 0.0
