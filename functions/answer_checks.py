"""The checks an answer passes while the model writes it: what it adds is shown only once
they have read it, and the first that fails stops it.

Three, on the answer so far (functions/pipeline.py's ``check`` step): the policy's terms
(functions/moderation.py), the facts of the passages it is drawn from (functions/factcheck.py),
and loops (functions/repetition.py). :class:`AnswerChecks` says how much of the answer may be
shown and, when one stops it, why (:class:`Stop`); an answer stopped for its facts gets the
passages' own sentence in its place (:meth:`AnswerChecks.replacement`). Kept apart from the
pipeline, which decides how an answer ends from what these say.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from functions.extractive import extract, no_answer, quoted_answer
from functions.factcheck import FactGate, Verdict, evidence
from functions.moderation import Moderation, Trip
from functions.repetition import Loop, LoopCheck
from shared.knowledge.search import Passage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stop:
    """Why an answer stops being shown: moderation withheld it, it stated a fact its passages
    do not, or it loops."""

    trip: Trip | None = None
    facts: Verdict | None = None
    loop: Loop | None = None


class AnswerChecks:
    """The checks of one answer to ``question``, asked where ``scopes`` apply, drawn from
    ``passages`` (none: not a grounded answer, no fact check)."""

    def __init__(self, moderation: Moderation, scopes: Sequence[str], *, question: str,
                 passages: Sequence[Passage] = (), loops: bool = True) -> None:
        self.question = question
        self.passages = list(passages)
        self._terms = moderation.stream_check(scopes)
        self._facts = (FactGate([text for p in passages for text in evidence(p)])
                       if passages else None)
        self._loops = LoopCheck() if loops else None
        self.stopped: Stop | None = None

    @property
    def gating(self) -> bool:
        """Whether a check holds back part of the answer while it is written."""
        return self._terms is not None or self._facts is not None

    def checked(self, text: str) -> int:
        """How much of ``text`` (the answer so far, as last fed) may be shown."""
        end = len(text)
        if self._terms is not None:
            end = min(end, self._terms.checked)
        if self._facts is not None:
            end = min(end, self._facts.checked)
        return end

    def feed(self, text: str, *, whole: bool = False) -> Stop | None:
        """Check what ``text``, the answer so far, adds (``whole``: the answer is complete)."""
        if self.stopped is not None:
            return self.stopped
        if self._terms is not None:
            verdict = self._terms.feed(text, whole=whole)
            if verdict.flagged:
                self.stopped = Stop(trip=Trip("output", "policy", verdict.categories))
                return self.stopped
        if self._facts is not None:
            failed = self._facts.feed(text, whole=whole)
            if failed is not None:
                log.info("an answer stated %d fact(s) its passages do not; replaced by a quote"
                         " from them", len(failed.unsupported))
                self.stopped = Stop(facts=failed)
                return self.stopped
        loop = self._loops.feed(text) if self._loops is not None else None
        if loop is not None:
            log.info("an answer looped (%s); cut after its first turn", loop.kind)
            self.stopped = Stop(loop=loop)
            return self.stopped
        return None

    def settle(self, text: str) -> Stop | None:
        """Check ``text`` as the whole answer, where it ends early (at a loop's first turn,
        before its sentence did): what the policy and the facts say of the part not yet
        checked."""
        if self._terms is not None:
            verdict = self._terms.feed(text, whole=True)
            if verdict.flagged:
                return Stop(trip=Trip("output", "policy", verdict.categories))
        if self._facts is not None:
            failed = self._facts.feed(text, whole=True)
            if failed is not None:
                return Stop(facts=failed)
        return None

    def replacement(self) -> str:
        """What is shown instead of an answer that stated a fact its passages do not."""
        found = extract(self.question, self.passages)
        if found is not None:
            return quoted_answer(self.question, found)
        return no_answer(self.question, self.passages)
