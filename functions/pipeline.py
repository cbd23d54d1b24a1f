"""One answer, the same whichever door the question came in by: the API or a bot.

    admit        the question passes moderation (or the asker gets the refusal)
    ground       the passages of the documents the asker may read; none relevant, or none
                 that answers the question (functions/answerability.py, and with
                 CHARLA_ANSWER_JUDGE on, the model asked yes or no: functions/judge.py):
                 "I don't know", with the collections searched or the closest sources, and
                 the model is not asked to answer
    lay out      the passages and the question, one layout for every door (functions/layout.py),
                 and, primed, the answer's first words
    ask          the model server (redacted first with CHARLA_REDACT_MODEL_INPUT), fitting
                 the prompt again once if the engine counts it too long (functions/overflow.py)
    check        while the model writes: the policy's terms, the facts of the passages, loops
                 (:class:`AnswerChecks`, functions/answer_checks.py); only what passed is
                 shown
    end          the guard model on the whole answer; one :class:`Ending` says what the reader
                 was shown in the end, and why

How an answer is shown differs by door, and nothing else does: the API relays the engine's
events or returns a whole completion (functions/api/routes.py), a bot edits a message as the
answer grows (functions/worker/answer.py). Each records what it showed in its own store (the
audit log, the conversation history) from the :class:`Ending`.

When a check stops an answer, the rest is not shown:

- the policy (or, at the end, the guard model) withholds it: the asker gets the refusal;
- a sentence states a fact no passage states: the sentences before it, which were checked,
  stay, followed by the sentence of the passages that best answers the question, quoted with
  its source, or by "I don't know" with the closest sources when no sentence does;
- the answer loops (functions/repetition.py): it ends after the loop's first turn, and the
  engine stops writing.
- a primed answer (one started with the words of the passage sentence that best answers the
  question) is shown as far as it copies its passage (functions/copy_check.py): a word
  changed in that sentence gets the sentence quoted with its source instead; a word that
  leaves the passage after it ends the answer with the last sentence copied whole.

A structured answer (the API's ``response_format`` and ``tools``) is grounded only when the
asker names its collections. JSON cannot take a quote of ours in place of a value, so a JSON
answer is checked once whole (its values, functions/json_facts.py) and, when one states a fact
no passage states, or no passage answers the question, refused whole (``How.REFUSED``, the
reason in its place). A tool call is not checked for facts: it is not a statement to a reader.
Words in place of a call (``tool_choice: auto``) are checked as any answer; when the passages
do not answer the question, the model is asked without them (its tools may find the answer),
and words in place of a call get "I don't know" with the closest sources.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.answer_checks import AnswerChecks, Form, Stop
from functions.answerability import answers
from functions.extractive import Extract, no_answer
from functions.judge import judged
from functions.knowledge import dont_know
from functions.layout import GROUNDED_STOP, laid_out, lead
from functions.model_client import ModelClient, ModelServerError
from functions.moderation import Moderation, Trip, refusal
from functions.overflow import overflow_scale
from functions.sse import StreamRecorder
from shared.chat import Message, prompt_tokens
from shared.knowledge.search import Passage
from shared.redact import redact_messages
from shared.settings import Settings

log = logging.getLogger(__name__)

CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"



class How(StrEnum):
    """How an answer ended."""

    ANSWERED = "answered"  # the model's answer, whole
    CUT = "cut"  # the model's answer up to where it started to loop, or left its passage
    REPLACED = "replaced"  # it stated a fact its passages do not: a quote from them instead
    WITHHELD = "withheld"  # moderation stopped it: the refusal
    REFUSED = "refused"  # a JSON answer stated a fact its passages do not: the reason instead
    DONT_KNOW = "dont_know"  # nothing relevant in the documents: the model was not asked


@dataclass(frozen=True)
class Asked:
    """One question, from whichever door."""

    text: str  # all the asker wrote this turn: what moderation reads
    question: str  # the message answered: what is looked up, what a quote answers
    sub: str  # as whom the model server is asked (its limits apply)
    principals: tuple[str, ...]  # whose grants and policy scopes apply
    collections: Sequence[str] | None = None  # the asker narrowed the search to these
    # JSON the engine is held to, or a tool call (the API's response_format and tools): no
    # words of ours start it, and it is not cut at a repetition (its form is the schema's).
    form: Form = Form.TEXT
    named: frozenset[str] = frozenset()  # Form.JSON: the values its schema names itself

    @property
    def structured(self) -> bool:
        return self.form != Form.TEXT


@dataclass(frozen=True)
class Found:
    """What the knowledge base gave one question."""

    collections: list[str]  # searched
    passages: list[Passage]  # relevant enough to answer from


@dataclass(frozen=True)
class Ending:
    """How an answer ended: what its reader was shown in the end, and why."""

    how: How
    text: str  # the answer as shown, whole
    kept: int = 0  # characters of the model's text that stay shown (How.CUT, How.REPLACED)
    added: str = ""  # what follows them (How.REPLACED: the quote, or "I don't know")
    trip: Trip | None = None  # How.WITHHELD: what tripped
    unsupported: tuple[str, ...] = ()  # How.REPLACED: what the model stated, no passage does

    @property
    def quotes_sources(self) -> bool:
        """Whether each source should be shown with the sentence that supports the answer
        (a replaced answer quotes its source in its text already)."""
        return self.how in (How.ANSWERED, How.CUT)


@dataclass(frozen=True)
class Step:
    """What one chunk of the engine's stream brought."""

    events: list[tuple[bytes, int | None]]  # StreamRecorder.feed_each's (event, length)
    shown: int  # how much of the answer may be shown now
    end: bool  # the answer is complete (and passed every check)
    stopped: bool = False  # a check stopped it: the last step (Answer.ending says how)


class Answer:
    """One answer's way through the pipeline (:meth:`Pipeline.begin` makes one)."""

    def __init__(self, moderation: Moderation, model: ModelClient, asked: Asked,
                 scopes: Sequence[str], *, redact: bool = False, prime: bool = False,
                 judge_s: float | None = None) -> None:
        self._moderation = moderation
        self._model = model
        self._redact = redact
        self._prime = prime
        self._judge_s = judge_s  # the answer judge's timeout; None: no judge
        self.asked = asked
        self.scopes = tuple(scopes)
        self.found: Found | None = None
        self.checks = AnswerChecks(moderation, scopes, question=asked.question, form=asked.form)
        self.ending: Ending | None = None
        self.lead = ""  # the answer's start, written for the model (a primed answer)
        self._laid: tuple[Message, Message] | None = None  # (as laid out, as asked)
        self.refused: Trip | None = None  # set by Pipeline.begin: the question was withheld
        self.answerable = True  # the passages found answer the question
        self._whom = ""  # who could read the collections searched (for "I don't know")
        self._best: Extract | None = None  # the sentence that best answers the question

    @property
    def passages(self) -> list[Passage]:
        return self.found.passages if self.found is not None else []

    async def ground(self, search: Callable[[], Awaitable[Found | None]], *,
                     whom: str) -> Ending | None:
        """Look the question up with ``search`` (None: no knowledge base for this asker).
        Nothing relevant in the collections searched ends the answer here: "I don't know"
        (``whom`` names who could read them), not a guess; so do passages that do not answer
        the question ("I don't know", with them as the closest sources)."""
        self.found = await search()
        if self.found is None:
            return None
        form, self._whom = self.asked.form, whom
        verdict = (answers(self.asked.question, self.found.passages)
                   if self.found.passages else None)
        self.answerable = verdict is not None and verdict.answered
        self._best = verdict.best if verdict is not None else None
        if self.answerable and self._judge_s is not None:
            said = await judged(self._model, self.asked.question, self.found.passages,
                                sub=self.asked.sub, timeout_s=self._judge_s,
                                redact=self._redact)
            if said is False:
                log.info("the answer judge says the passages do not state the answer")
                self.answerable = False
        self.checks = AnswerChecks(self._moderation, self.scopes, question=self.asked.question,
                                   passages=self.found.passages, form=form,
                                   named=self.asked.named, hold=form == Form.TOOLS)
        if form == Form.TOOLS:
            return None  # its tools may find what the documents do not say
        if self.found.collections and not self.found.passages:
            self.ending = Ending(How.DONT_KNOW, dont_know(self.found.collections, whom))
            return self.ending
        if self.found.passages and not self.answerable:
            # Close passages about something else (Madrid's rule for a Lisbon question):
            # the closest sources, and no answer the model would draw from them.
            log.info("the passages found do not answer the question: I don't know")
            self.ending = Ending(How.DONT_KNOW,
                                 no_answer(self.asked.question, self.found.passages))
            return self.ending
        return None

    def lay_out(self, question: Message) -> Message:
        """``question`` as asked with the passages it is answered from (:func:`laid_out`);
        with priming on, the answer's start is chosen too (:func:`lead`)."""
        laid = laid_out(question, self.passages if self.answerable else [], self.asked.form)
        if laid is not question:
            self._laid = (laid, question)
            if self._prime and not self.asked.structured:
                found = self._best  # chosen once, by the answerability rule
                self.lead = lead(found)
                if found is not None and self.lead:
                    self.checks.primed(found, self.lead)
        return laid

    def asker_said(self, messages: Sequence[Message]) -> list[Message]:
        """``messages`` with the asker's question in place of what :meth:`lay_out` made of
        it (what an audit log keeps: not the passages)."""
        if self._laid is None:
            return list(messages)
        laid, question = self._laid
        return [question if m is laid else m for m in messages]

    async def ask(self, build: Callable[[float], dict[str, Any]], *, stream: bool
                  ) -> tuple[dict[str, Any] | None, AsyncIterator[bytes] | None, bytes]:
        """Ask the model server for the body ``build(scale)`` makes (``scale``: how much to
        scale token estimates by when fitting the prompt). If the engine counts the prompt
        too long, fit it again with the engine's count and ask once more.

        Returns the whole completion, or the open event stream and its first chunk."""
        scale = 1.0
        for attempt in (1, 2):
            body = build(scale)
            if self._laid is not None:
                # Grounded: the most likely words, which are the passages' (measured: the
                # figure carried at temperature 0 more often than at 0.7, in every layout),
                # and one paragraph, as asked: past a blank line a small model goes on with
                # the next question it makes up, or the instruction (JSON may hold one).
                body.setdefault("temperature", 0.0)
                if not body.get("stop") and not self.asked.structured:
                    body["stop"] = [GROUNDED_STOP]
            if self.lead:  # the engine goes on from the answer's start
                body["messages"] = [*body["messages"],
                                    {"role": "assistant", "content": self.lead}]
            if self._redact:  # a shared model host sees no personal data, passages included
                body["messages"] = redact_messages(body["messages"])
            try:
                if not stream:
                    return await self._model.complete(body, sub=self.asked.sub), None, b""
                events = self._model.stream(body, sub=self.asked.sub)
                return None, events, await anext(events)
            except ModelServerError as exc:
                if exc.code != CONTEXT_LENGTH_EXCEEDED or attempt == 2:
                    raise
                scale = overflow_scale(exc.message, prompt_tokens(body["messages"]))
                log.info("prompt over the engine's window; fitting again with scale %.2f",
                         scale)
        raise AssertionError("unreachable")

    async def stream(self, events: AsyncIterator[bytes], recorder: StreamRecorder, *,
                     first: bytes = b"", retractable: bool) -> AsyncIterator[Step]:
        """Read the engine's stream into ``recorder``, a :class:`Step` per chunk, checking
        the answer as it grows. Stops early when a check stops the answer (the engine stops
        writing too) after a last step that says so and how much of the answer stays;
        :attr:`ending` then says how it ended. ``retractable``: what was shown
        can still be taken back (a bot's message, edited), so a guard model that cannot
        judge the whole answer fails it rather than letting it stand.

        A stream the model server broke off raises :class:`ModelServerError`."""
        async for chunk in _ending_with_none(events, first):
            pieces = recorder.feed_each(chunk)
            if recorder.error is not None:
                raise ModelServerError(502, recorder.error, None, recorder.error_code)
            end = chunk is None
            answer = recorder.answer
            stop = self.checks.feed(answer, whole=end,
                                    called=end and recorder.finish_reason == "tool_calls")
            if stop is not None and not end and isinstance(events, AsyncGenerator):
                await events.aclose()  # the engine stops writing what nobody will see
            if stop is not None or end:
                self.ending = await self._ended(stop, answer, retractable=retractable)
                if self.ending.how != How.ANSWERED:
                    yield Step(pieces, self.ending.kept, end=False, stopped=True)
                    return
            yield Step(pieces, len(answer) if end else self.checks.checked(answer), end)

    async def whole(self, content: str, *, called: bool = False) -> Ending:
        """The ending of a whole answer, ``content`` (``called``: it is a tool call)."""
        stop = self.checks.feed(content, whole=True, called=called)
        self.ending = await self._ended(stop, content, retractable=True)
        return self.ending

    async def _ended(self, stop: Stop | None, answer: str, *, retractable: bool) -> Ending:
        """How ``answer`` ends, ``stop`` having stopped it (or not): what the model wrote,
        whole or up to its loop, still passes the guard model's judgement of the whole."""
        if (self.asked.form == Form.TOOLS and not self.answerable and self.found is not None
                and not self.checks.called and (stop is None or stop.trip is None)):
            # Words where the documents do not answer, and no call to find out.
            added = (no_answer(self.asked.question, self.passages) if self.passages
                     else dont_know(self.found.collections, self._whom))
            return Ending(How.REPLACED, added, added=added)
        ending = self._stopped(stop, answer) if stop is not None else Ending(
            How.ANSWERED, answer.strip())
        if ending.how in (How.ANSWERED, How.CUT):
            trip = await self._judge(ending.text, retractable=retractable)
            if trip is not None:
                return Ending(How.WITHHELD, refusal(self.asked.text), trip=trip)
        return ending

    async def _judge(self, answer: str, *, retractable: bool) -> Trip | None:
        """The guard model's verdict on the whole answer (and, for an answer that was not
        streamed, the policy's over the whole of it)."""
        if retractable:
            return await self._moderation.check_output(self.asked.text, answer, self.scopes,
                                                       sub=self.asked.sub)
        return await self._moderation.judge_streamed(self.asked.text, answer,
                                                     sub=self.asked.sub)

    def _stopped(self, stop: Stop, answer: str) -> Ending:
        if stop.trip is not None:
            return Ending(How.WITHHELD, refusal(self.asked.text), trip=stop.trip)
        if stop.loop is not None:
            kept = stop.loop.cut
            while kept < len(answer) and answer[kept].isspace():
                kept += 1  # the spaces after the first turn's end go with it
            # The first turn may end inside a sentence the checks have not read yet.
            settled = self.checks.settle(answer[:kept])
            if settled is None:
                return Ending(How.CUT, answer[:kept].strip(), kept=kept)
            stop = settled
            if stop.trip is not None:
                return Ending(How.WITHHELD, refusal(self.asked.text), trip=stop.trip)
        assert stop.facts is not None
        if self.asked.form == Form.JSON:  # no quote can stand in a schema's place
            return Ending(How.REFUSED, self.checks.replacement(),
                          unsupported=tuple(stop.facts.unsupported))
        kept = self.checks.checked(answer)
        before = answer[:kept].strip()
        if stop.left and before:
            # A primed answer: the sentences it copied from its passage, not what follows.
            return Ending(How.CUT, before, kept=kept)
        added = ("\n\n" if before else "") + self.checks.replacement()
        return Ending(How.REPLACED, before + added, kept=kept, added=added,
                      unsupported=tuple(stop.facts.unsupported))


@dataclass
class Pipeline:
    """The answer pipeline of one process (the API's or a worker's)."""

    moderation: Moderation
    model: ModelClient
    redact: bool = False  # CHARLA_REDACT_MODEL_INPUT: what is sent to the model is redacted
    prime: bool = False  # CHARLA_KB_PRIME_ANSWERS: grounded answers start with their lead
    judge_s: float | None = None  # CHARLA_ANSWER_JUDGE on: its timeout (functions/judge.py)

    @classmethod
    def configured(cls, settings: Settings, moderation: Moderation, model: ModelClient
                   ) -> Pipeline:
        """The pipeline ``settings`` ask for."""
        return cls(moderation, model, redact=settings.redact_model_input,
                   prime=settings.kb_prime_answers,
                   judge_s=settings.answer_judge_timeout_s if settings.answer_judge else None)

    async def begin(self, asked: Asked) -> Answer:
        """Admit ``asked``: its policy scopes, and moderation of what the asker wrote
        (:attr:`Answer.refused` is set when it may not be answered)."""
        scopes = await self.moderation.scopes(list(asked.principals), asked.collections)
        answer = Answer(self.moderation, self.model, asked, scopes, redact=self.redact,
                        prime=self.prime, judge_s=self.judge_s)
        answer.refused = await self.moderation.check_input(asked.text, scopes, sub=asked.sub)
        if answer.refused is not None:
            answer.ending = Ending(How.WITHHELD, refusal(asked.text), trip=answer.refused)
        return answer


async def _ending_with_none(events: AsyncIterator[bytes], first: bytes
                            ) -> AsyncIterator[bytes | None]:
    """``first``, the rest of ``events``, then None for the end."""
    if first:
        yield first
    async for chunk in events:
        yield chunk
    yield None
