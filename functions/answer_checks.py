"""The checks an answer passes while the model writes it: what it adds is shown only once
they have read it, and the first that fails stops it.

Three, on the answer so far (functions/pipeline.py's ``check`` step): the policy's terms
(functions/moderation.py), the facts of the passages it is drawn from (functions/factcheck.py;
a primed answer, also that it copies its passage, functions/copy_check.py), and loops
(functions/repetition.py). :class:`AnswerChecks` says how much of the answer may be
shown and, when one stops it, why (:class:`Stop`); an answer stopped for its facts gets the
passages' own sentence in its place (:meth:`AnswerChecks.replacement`). Kept apart from the
pipeline, which decides how an answer ends from what these say.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from functions.copy_check import CopyGate
from functions.extractive import Extract, extract, no_answer, quoted_answer
from functions.factcheck import FactGate, Verdict, evidence
from functions.json_facts import JsonFacts
from functions.moderation import Moderation, Trip
from functions.repetition import Loop, LoopCheck
from shared.knowledge.search import Passage

log = logging.getLogger(__name__)


class Form(StrEnum):
    """What the answer is written as."""

    TEXT = "text"  # words for a person
    JSON = "json"  # JSON the engine is held to (``response_format``)
    TOOLS = "tools"  # a call of one of the request's tools, or (``tool_choice: auto``) words


@dataclass(frozen=True)
class Stop:
    """Why an answer stops being shown: moderation withheld it, it stated a fact its passages
    do not (or, primed, did not copy the sentence it was started from), it left its passage
    after copying that sentence (``left``), or it loops."""

    trip: Trip | None = None
    facts: Verdict | None = None
    loop: Loop | None = None
    left: bool = False


class AnswerChecks:
    """The checks of one answer to ``question``, asked where ``scopes`` apply, drawn from
    ``passages`` (none: not a grounded answer, no fact check), written as ``form``.

    A JSON answer's facts are its values, checked once it is whole (functions/json_facts.py);
    ``named`` are the values its schema names itself. A grounded answer that may be a tool
    call is held until it is whole (``hold``), when it is known to be words or a call: a call
    is not a statement to a reader, and its arguments pass the policy's terms only. Only words
    are checked for loops (a structured answer's form is the schema's)."""

    def __init__(self, moderation: Moderation, scopes: Sequence[str], *, question: str,
                 passages: Sequence[Passage] = (), form: Form = Form.TEXT,
                 named: frozenset[str] = frozenset(), hold: bool = False) -> None:
        self.question = question
        self.passages = list(passages)
        self.form = form
        self.called = False  # the answer is a tool call
        self._held = hold  # nothing may be shown until the whole answer is checked
        self._terms = moderation.stream_check(scopes)
        said = [text for p in passages for text in evidence(p)]
        self._facts: FactGate | JsonFacts | None = (
            None if not passages else JsonFacts(said, named) if form == Form.JSON
            else FactGate(said))
        self._loops = LoopCheck() if form == Form.TEXT else None
        self._copy: CopyGate | None = None
        self._found: Extract | None = None  # the sentence a primed answer was started from
        self.stopped: Stop | None = None

    def primed(self, found: Extract, lead: str) -> None:
        """The answer was started with ``lead``, the first words of ``found``: it is shown as
        far as it copies that sentence's passage (functions/copy_check.py)."""
        self._copy = CopyGate(found.sentence, found.passage.content, lead)
        self._found = found

    def checked(self, text: str) -> int:
        """How much of ``text`` (the answer so far, as last fed) may be shown."""
        if self._held:
            return 0
        end = len(text)
        if self._terms is not None:
            end = min(end, self._terms.checked)
        if self._facts is not None:
            end = min(end, self._facts.checked)
        if self._copy is not None:
            end = min(end, self._copy.checked)
        return end

    def feed(self, text: str, *, whole: bool = False, called: bool = False) -> Stop | None:
        """Check what ``text``, the answer so far, adds (``whole``: the answer is complete;
        ``called``: it is a tool call)."""
        if self.stopped is not None:
            return self.stopped
        if called:
            self.called, self._facts = True, None
        if self._terms is not None:
            verdict = self._terms.feed(text, whole=whole)
            if verdict.flagged:
                self.stopped = Stop(trip=Trip("output", "policy", verdict.categories))
                return self.stopped
        if self._copy is not None:  # first: it sees a word leave the passage as it comes
            self.stopped = self._copied(text, self._copy.feed(text, whole=whole))
            if self.stopped is not None:
                return self.stopped
        # Words or a call: known at the end (the gateway writes a tool answer whole).
        if self._facts is not None and (whole or self.form != Form.TOOLS):
            failed = self._facts.feed(text, whole=whole)
            if failed is not None:
                log.info("an answer stated %d fact(s) its passages do not; not shown",
                         len(failed.unsupported))
                self.stopped = Stop(facts=failed)
                return self.stopped
        loop = self._loops.feed(text) if self._loops is not None else None
        if loop is not None:
            log.info("an answer looped (%s); cut after its first turn", loop.kind)
            self.stopped = Stop(loop=loop)
            return self.stopped
        self._held = self._held and not whole
        return None

    def settle(self, text: str) -> Stop | None:
        """Check ``text`` as the whole answer, where it ends early (at a loop's first turn,
        before its sentence did): what the policy and the facts say of the part not yet
        checked."""
        if self._terms is not None:
            verdict = self._terms.feed(text, whole=True)
            if verdict.flagged:
                return Stop(trip=Trip("output", "policy", verdict.categories))
        if self._copy is not None:
            copied = self._copied(text, self._copy.feed(text, whole=True))
            if copied is not None:
                return copied
        if self._facts is not None:
            failed = self._facts.feed(text, whole=True)
            if failed is not None:
                return Stop(facts=failed)
        return None

    def _copied(self, text: str, failed: Verdict | None) -> Stop | None:
        if failed is None or self._copy is None:
            return None
        if self._copy.first:
            log.info("a primed answer did not copy the sentence it was started from; "
                     "the sentence is quoted instead")
            return Stop(facts=failed)
        log.info("a primed answer left its passage; it ends with the last sentence copied")
        if isinstance(self._facts, FactGate):  # what stays shown has its facts checked too
            self._facts.feed(text[:self._copy.checked], whole=True)
        return Stop(facts=failed, left=True)

    def replacement(self) -> str:
        """What is shown instead of an answer that stated a fact its passages do not."""
        found = self._found or extract(self.question, self.passages)
        if found is not None:
            return quoted_answer(self.question, found)
        return no_answer(self.question, self.passages)
