"""What an answer must pass before anyone reads it, the same for the API and the bots.

While the model writes, two checks decide how much of the answer may be shown: the moderation
policy's terms (shared/moderation.py's StreamCheck: up to the word being written) and, for an
answer drawn from the knowledge base, the facts of its passages (functions/factcheck.py's
FactGate: whole sentences whose facts the passages state). Only text both have passed is
shown (:meth:`AnswerChecks.checked`). When one of them stops the answer, the rest is not shown:

- the policy (or, at the end, the guard model) withholds it: the asker gets the refusal;
- a sentence states a fact no passage states: the answer is replaced by the sentence of the
  passages that best answers the question, quoted with its source, or by "I don't know" with
  the closest sources when no sentence does (:meth:`AnswerChecks.replacement`);
- the answer loops (functions/repetition.py): it ends after the loop's first turn, and the
  engine stops writing.

The API's event stream (functions/api/routes.py) and the bots' progressive replies
(functions/worker/answer.py) are two ways of showing what passes here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from functions.factcheck import FactGate, Verdict, evidence, extract, no_answer, quoted_answer
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
                 passages: Sequence[Passage] = ()) -> None:
        self._moderation = moderation
        self.question = question
        self.passages = list(passages)
        self._terms = moderation.stream_check(scopes)
        self._facts = (FactGate([text for p in passages for text in evidence(p)])
                       if passages else None)
        self._loops = LoopCheck()
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
        loop = self._loops.feed(text)
        if loop is not None:
            log.info("an answer looped (%s); cut after its first turn", loop.kind)
            self.stopped = Stop(loop=loop)
            return self.stopped
        return None

    def replacement(self) -> str:
        """What is shown instead of an answer that stated a fact its passages do not."""
        found = extract(self.question, self.passages)
        if found is not None:
            return quoted_answer(self.question, found)
        return no_answer(self.question, self.passages)
