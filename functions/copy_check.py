"""A primed answer says what its passage says, in the passage's words.

A primed answer (functions/layout.py ``lead``) is started with the first words of the passage
sentence that best answers the question, for the model to copy the rest of it. The bundled
model copies well enough to carry the figure, and often not well enough to be shown as it
writes: on the evaluation set (docs/benchmarks.md, "A primed answer is a copy") it turned
"15 días naturales" into "15 días laborables", "peajes" into "pejimas", "150 € brutos" into
"150 euros", and went on past the sentence with facts of other passages ("The daily meal
allowance is 55 € and the alcohol is 80 €"), the prompt's markup (``</passage>``), or a
sentence of its own. Each fact of those was in some passage, so the fact check let them
through.

So a primed answer is shown as far as it copies its passage, sentence by sentence
(:class:`CopyGate`): first the sentence it was started from, then any other sentences of the
same passage, each whole and once, compared word for word (case, accents, punctuation and
citation marks aside; a figure by its digits). The first word that leaves them stops it:

- within the first sentence, the answer is replaced by that sentence quoted with its source
  (the reader gets the passage's words, not a near copy);
- after it, the answer ends with the last sentence copied whole.

An engine that was not given the start (the gateway leaves it out for an engine at a URL
that does not continue a last assistant message) writes an answer of its own: one that does
not begin with the start is not held to a copy, only to the fact check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from functions.factcheck import CITATION, Verdict, fold
from functions.quotes import sentences

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Token:
    folded: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    """``text``'s words and figures, folded, with where each is; citation marks ("[1]") are
    not words."""
    marks = [m.span() for m in CITATION.finditer(text)]
    return [_Token(fold(m.group(0)), m.start(), m.end()) for m in _WORD.finditer(text)
            if not any(a <= m.start() < b for a, b in marks)]


def _words(text: str) -> tuple[str, ...]:
    return tuple(t.folded for t in _tokens(text))


class CopyGate:
    """Checks a primed answer while it is written: how much of it is whole sentences of its
    passage (:attr:`checked`, what may be shown), the first being ``sentence``, the one it
    was started from, with ``lead``; :meth:`feed` returns a verdict when it leaves them
    (:attr:`failed` keeps it, and :attr:`first` says whether that was within the first
    sentence)."""

    def __init__(self, sentence: str, passage: str, lead: str) -> None:
        self._lead = _words(lead)
        self.off = False  # the answer does not begin with the lead: the engine wrote its own
        self._start = _words(sentence)
        self._others = [w for w in dict.fromkeys(_words(s) for s in sentences(passage))
                        if w and w != self._start]
        self.checked = 0
        self.failed: Verdict | None = None
        self.first = False

    def feed(self, text: str, *, whole: bool = False) -> Verdict | None:
        """Check ``text``, the answer so far (``whole``: complete)."""
        if self.failed is not None:
            return self.failed
        tokens = _tokens(text)
        if not whole and tokens and tokens[-1].end == len(text):
            tokens = tokens[:-1]  # the last word may still grow
        begun = tuple(t.folded for t in tokens[:len(self._lead)])
        self.off = self.off or begun != self._lead[:len(begun)]
        if self.off:
            self.checked = len(text)
            return None
        at, copied, shown = 0, 0, 0
        left: set[int] = set(range(len(self._others)))
        while at < len(tokens):
            candidates = [self._start] if copied == 0 else [self._others[k] for k in left]
            length, reach = _copied(candidates, [t.folded for t in tokens[at:]], whole=whole)
            if length is None:  # not decided yet: the sentence may go on
                break
            if length == 0:  # the answer leaves its passage here
                self.first = copied == 0
                wrong = tokens[min(at + reach, len(tokens) - 1)]
                self.failed = Verdict((), (text[wrong.start:wrong.end],))
                self.checked = shown
                return self.failed
            words = tuple(t.folded for t in tokens[at:at + length])
            left -= {k for k in left if self._others[k] == words}
            at += length
            copied += 1
            shown = _ended(text, tokens[at - 1].end)
        if whole and copied == 0:  # no word at all
            self.first = True
            self.failed = Verdict((), ())
            return self.failed
        self.checked = len(text) if whole else shown
        return None


_MARK = re.compile(r"\s*" + CITATION.pattern)
_CLOSERS = frozenset(".!?…;:)]»”\"'*_")


def _ended(text: str, at: int) -> int:
    """Where a copied sentence ending at ``at`` ends with its closing marks (its stop, a
    quote's or a bracket's close, a citation mark: " [1].") and the spaces after them, not
    what follows them."""
    while at < len(text):
        mark = _MARK.match(text, at)
        if mark:
            at = mark.end()
        elif text[at] in _CLOSERS:
            at += 1
        else:
            break
    while at < len(text) and text[at].isspace():  # and the spaces after it, as a stream has it
        at += 1
    return at


def _copied(candidates: Sequence[tuple[str, ...]], words: Sequence[str], *,
            whole: bool) -> tuple[int | None, int]:
    """How many of ``words`` make one of ``candidates`` whole (the longest; 0 when none can,
    None when the words so far could still become one, the answer not being whole), and how
    far they follow any candidate (where a copy that fails goes wrong)."""
    best = reach = 0
    for candidate in candidates:
        n = len(candidate)
        same = next((i for i, (a, b) in enumerate(zip(words, candidate, strict=False)) if a != b),
                    min(len(words), n))
        reach = max(reach, same)
        if same == n:
            best = max(best, n)
        elif not whole and same == len(words):
            return None, reach  # the words so far start this sentence: wait for more
    return best, reach
