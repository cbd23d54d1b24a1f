"""What redaction finds (shared/redact.py), and which of two overlapping findings stands.

A finding is a kind and a span of the text; :data:`KINDS` lists the kinds in their order of
precedence, so that where two findings overlap the stronger kind is kept
(:func:`without_overlaps`), and :class:`Spans` answers, for the phone numbers looked for last,
whether digits are already taken by a stronger kind. Kept apart from the detectors: this is
the bookkeeping every kind shares.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate

# In order of precedence when two findings overlap.
KINDS = ("SECRET", "EMAIL", "IBAN", "CARD", "SSN", "DNI", "NIE", "IP", "PHONE")
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data or one credential: its kind and where it lies in the text."""

    kind: str
    start: int
    end: int


class Spans:
    """Spans, possibly overlapping, asked whether any of them meets a given span."""

    def __init__(self, findings: list[Finding]) -> None:
        spans = sorted((f.start, f.end) for f in findings)
        self._starts = [s for s, _ in spans]
        self._reach = list(accumulate((e for _, e in spans), max))  # furthest end so far

    def overlaps(self, start: int, end: int) -> bool:
        before = bisect_left(self._starts, end)  # the spans that start before ``end``
        return before > 0 and self._reach[before - 1] > start


def without_overlaps(found: list[Finding]) -> list[Finding]:
    """Keeps, of overlapping findings, the one of the stronger kind, then the longer."""
    starts: list[int] = []
    kept: list[Finding] = []  # in order of start, never overlapping
    for f in sorted(found, key=lambda f: (_RANK[f.kind], f.start - f.end, f.start)):
        i = bisect_right(starts, f.start)
        if (i > 0 and kept[i - 1].end > f.start) or (i < len(kept) and kept[i].start < f.end):
            continue
        starts.insert(i, f.start)
        kept.insert(i, f)
    return kept
