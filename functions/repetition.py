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
    """Feed it the answer so far; it returns a :class:`Loop` once the answer loops."""

    def __init__(self) -> None:
        self._lines: dict[str, int] = {}
        self._seen_lines = 0  # characters of the answer whose lines were counted
        self._second = 0  # where a line first came back

    def feed(self, text: str) -> Loop | None:
        return self._lines_loop(text) or self._stretch_loop(text) or self._variety_loop(text)

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

    @staticmethod
    def _stretch_loop(text: str) -> Loop | None:
        tokens = list(_TOKEN.finditer(text))
        words = [t.group(0).lower() for t in tokens]
        n = len(words)
        for period in range(1, min(MAX_PERIOD, n // REPEATS) + 1):
            tail = words[n - period:]
            if not any(w[0].isalnum() for w in tail):
                continue  # "..." or "---": punctuation repeats by nature
            turns = REPEATS + 2 if period == 1 else REPEATS  # "no, no, no" is still speech
            if n < turns * period:
                continue
            if all(words[n - (k + 1) * period:n - k * period] == tail for k in range(1, turns)):
                while n >= (turns + 1) * period and words[
                        n - (turns + 1) * period:n - turns * period] == tail:
                    turns += 1  # the loop began earlier: keep only its first turn
                second = tokens[n - (turns - 1) * period].start()
                first = tokens[n - turns * period].start()
                return Loop(_cut_before(text, second, first), "stretch")
        return None

    @staticmethod
    def _variety_loop(text: str) -> Loop | None:
        tokens = list(_WORD.finditer(text))  # words only: a table's rules are not a loop
        if len(tokens) < WINDOW:
            return None
        window = [t.group(0).lower() for t in tokens[-WINDOW:]]
        triples = list(zip(window, window[1:], window[2:], strict=False))
        if len(set(triples)) >= MIN_VARIETY * len(triples):
            return None
        start = tokens[-WINDOW].start()
        return Loop(_cut_before(text, start, 0), "variety")
