"""An answer that loops: a small model can repeat itself until its token limit runs out.

"Hola! - (Yan) "Hola!" A: Ejéreal B: "Hola!"…" for 77 seconds is no answer, and every second of
it keeps an engine slot busy. :class:`LoopCheck` looks at the answer while it is written and
says where to cut it when

- its end repeats one stretch of words (up to :data:`MAX_PERIOD` words) three times in a row
  ("I can help. I can help. I can help."),
- one line, of two words or more, comes back a third time,
- or its last :data:`WINDOW` words are made of too few different three-word sequences (a loop
  that varies a little each turn).

The cut falls after the first turn of the loop, at the last sentence or line end before its
second, so what stays reads as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PERIOD = 40  # words in a repeated stretch
REPEATS = 3  # turns of a stretch, or copies of a line, that make a loop
WINDOW = 90  # words over which variety is measured
MIN_VARIETY = 0.4  # share of distinct three-word sequences under which the window loops

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_END = re.compile(r"[.!?…](?=\s|$)|\n")


@dataclass(frozen=True)
class Loop:
    cut: int  # characters of the answer to keep
    kind: str  # "stretch" | "line" | "variety"


def _cut_before(text: str, position: int, floor: int) -> int:
    """The last sentence or line end at or before ``position`` (not before ``floor``), or
    ``position`` when there is none."""
    ends = [m.end() for m in _END.finditer(text, floor, position)]
    return ends[-1] if ends else position


class LoopCheck:
    """Feed it the answer so far; it returns a :class:`Loop` once the answer loops. Each
    call reads only what the last one had not (the last token again, which may have grown)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lines: dict[str, int] = {}
        self._seen_lines = 0  # characters of the answer whose lines were counted
        self._second = 0  # where a line first came back
        self._tokens: list[tuple[int, str]] = []  # (start, lower case): words and marks
        self._words: list[tuple[int, str]] = []  # the words alone

    def feed(self, text: str) -> Loop | None:
        self._read(text)
        return self._lines_loop(text) or self._stretch_loop(text) or self._variety_loop(text)

    def _read(self, text: str) -> None:
        if self._tokens and self._tokens[-1][0] >= len(text):  # not a continuation
            self._reset()
        start = 0
        if self._tokens:
            start, _ = self._tokens.pop()
            if self._words and self._words[-1][0] == start:
                self._words.pop()
        for m in _TOKEN.finditer(text, start):
            token = (m.start(), m.group(0).lower())
            self._tokens.append(token)
            if _WORD.match(token[1]):
                self._words.append(token)

    def _lines_loop(self, text: str) -> Loop | None:
        done = text.rfind("\n") + 1  # lines whole so far
        if done <= self._seen_lines:
            return None
        start = self._seen_lines
        for m in re.finditer(r"[^\n]*\n", text[start:done]):
            line = " ".join(_TOKEN.findall(m.group(0).lower()))
            if len(line.split()) < 2:
                continue
            self._lines[line] = self._lines.get(line, 0) + 1
            if self._lines[line] == 2:
                self._second = start + m.start()  # where the line came back first
            if self._lines[line] >= REPEATS:
                self._seen_lines = done
                return Loop(_cut_before(text, self._second, 0), "line")
        self._seen_lines = done
        return None

    def _stretch_loop(self, text: str) -> Loop | None:
        tokens = self._tokens
        n = len(tokens)
        for period in range(1, min(MAX_PERIOD, n // REPEATS) + 1):
            if tokens[-1][1] != tokens[-1 - period][1]:
                continue  # the last token does not come back a period before: no loop of it
            turns = REPEATS + 2 if period == 1 else REPEATS  # "no, no, no" is still speech
            if n < turns * period:
                continue
            tail = [t for _, t in tokens[n - period:]]
            if not any(w[0].isalnum() for w in tail):
                continue  # "..." or "---": punctuation repeats by nature

            def turn(k: int, period: int = period) -> list[str]:
                """The ``k``-th stretch of ``period`` tokens back from the end (0: the last)."""
                return [t for _, t in tokens[n - (k + 1) * period:n - k * period]]

            if all(turn(k) == tail for k in range(1, turns)):
                while n >= (turns + 1) * period and turn(turns) == tail:
                    turns += 1  # the loop began earlier: keep only its first turn
                second = tokens[n - (turns - 1) * period][0]
                first = tokens[n - turns * period][0]
                return Loop(_cut_before(text, second, first), "stretch")
        return None

    def _variety_loop(self, text: str) -> Loop | None:
        if len(self._words) < WINDOW:  # words only: a table's rules are not a loop
            return None
        window = [w for _, w in self._words[-WINDOW:]]
        triples = list(zip(window, window[1:], window[2:], strict=False))
        if len(set(triples)) >= MIN_VARIETY * len(triples):
            return None
        return Loop(_cut_before(text, self._words[-WINDOW][0], 0), "variety")
