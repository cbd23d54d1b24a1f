"""Cutting a parsed document into chunks small enough to embed and to quote in a prompt.

Structure first: a chunk never spans two sections, and a paragraph that fits in one chunk is
never cut. Only a paragraph longer than a chunk is cut, at sentence ends; only a sentence
longer than a chunk is cut between words; only a word longer than a chunk (a URL, a hash, a
base64 blob) is cut between characters. Consecutive chunks of one section share a few whole
sentences, so a fact that straddles a cut is still found whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.chat import estimate_tokens
from shared.knowledge.document import Document, Section

Count = Callable[[str], int]
HEADING_SEPARATOR = " › "


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, numbered from 0 in reading order."""

    ordinal: int
    heading: str | None  # the heading path joined with " › "
    page: int | None
    text: str


@dataclass(frozen=True, slots=True)
class _Atom:
    """A sentence, word or word fragment, and what joins it to the atom before it in the
    source: a newline between paragraphs, a space, or nothing inside a cut word."""

    text: str
    glue: str


# Words after which a period does not end a sentence (English and Spanish), compared in lower
# case without the period.
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "fig",
    "sr", "sra", "srta", "dña", "ud", "uds", "pág", "núm", "art", "cap", "ej", "p. ej", "aprox",
    "av", "ing", "lic", "dto", "tel",
})
# A sentence ends at ., !, ?, … (and closing quotes or brackets after them) before a space and
# a word that can start a sentence: a capital, a digit, Spanish ¿ or ¡, or an opening quote.
_END = re.compile(r"[.!?…]+[\"'\u201d\u2019»)\]]*"
                  r"(?=\s+[\"'\u201c\u2018«(\[¿¡—\-]*[\dA-ZÁÉÍÓÚÑÜ¿¡])")


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, whitespace collapsed; "Dr. Smith" and "p. ej." stay whole."""
    text = " ".join(text.split())
    sentences, start = [], 0
    for match in _END.finditer(text):
        before = text[max(start, match.start() - 24):match.start()]
        if match.group().startswith(".") and _is_abbreviation(before):
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def _is_abbreviation(before: str) -> bool:
    words = before.rsplit(" ", 2)
    last = words[-1].lower()
    pair = " ".join(words[-2:]).lower()
    # A single letter is an initial ("J. R. R. Tolkien"), or a list label.
    return last in _ABBREVIATIONS or pair in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def chunk_document(doc: Document, *, max_tokens: int = 256, overlap_tokens: int = 40,
                   count: Count = estimate_tokens) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` (by ``count``), numbered in reading order.

    ``overlap_tokens`` is how much of the end of a chunk the next chunk of the same section
    repeats, in whole sentences where they fit. A single character that ``count`` judges larger
    than ``max_tokens`` is the only thing that can exceed it. Raises ``ValueError`` unless
    ``0 <= overlap_tokens < max_tokens``.
    """
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    chunks: list[Chunk] = []
    for section in doc.sections:
        heading = HEADING_SEPARATOR.join(section.heading) or None
        for text in _chunk_section(section, max_tokens, overlap_tokens, count):
            chunks.append(Chunk(len(chunks), heading, section.page, text))
    return chunks


def _render(atoms: Sequence[_Atom]) -> str:
    return "".join(a.glue + a.text if i else a.text for i, a in enumerate(atoms))


def _units(section: Section, limit: int, count: Count) -> list[list[_Atom]]:
    """Groups of atoms to keep together: a whole paragraph where it fits, else its sentences,
    else a sentence's words, else a word's pieces."""
    units: list[list[_Atom]] = []
    for paragraph in re.split(r"\n\s*\n", section.text):
        sentences = split_sentences(paragraph)
        if not sentences:
            continue
        atoms = [_Atom(s, "\n" if i == 0 else " ") for i, s in enumerate(sentences)]
        if count(_render(atoms)) <= limit:
            units.append(atoms)
            continue
        for atom in atoms:
            if count(atom.text) <= limit:
                units.append([atom])
                continue
            for i, word in enumerate(atom.text.split(" ")):
                glue = atom.glue if i == 0 else " "
                if count(word) <= limit:
                    units.append([_Atom(word, glue)])
                else:
                    units += [[_Atom(piece, glue if j == 0 else "")]
                              for j, piece in enumerate(_cut_word(word, limit, count))]
    return units


def _cut_word(word: str, limit: int, count: Count) -> list[str]:
    pieces, at = [], 0
    while at < len(word):
        # The longest piece from ``at`` that fits, at least one character. Doubling first keeps
        # each step proportional to the piece, not to the word (a pasted blob can be megabytes).
        low, high = 1, 2
        while at + high < len(word) and count(word[at:at + high]) <= limit:
            low, high = high, high * 2
        high = min(high, len(word) - at)
        while low < high:
            middle = (low + high + 1) // 2
            fits = count(word[at:at + middle]) <= limit
            low, high = (middle, high) if fits else (low, middle - 1)
        pieces.append(word[at:at + low])
        at += low
    return pieces


def _overlap(atoms: list[_Atom], limit: int, count: Count) -> list[_Atom]:
    """The end of a finished chunk to repeat at the start of the next: whole trailing atoms up
    to ``limit``; if even the last one is larger, its last few words."""
    if limit <= 0:
        return []
    taken: list[_Atom] = []
    for atom in reversed(atoms):
        if count(_render([atom, *taken])) > limit:
            break
        taken.insert(0, atom)
    if taken or not atoms:
        return taken
    words: list[str] = []
    for word in reversed(atoms[-1].text.split(" ")):
        if count(" ".join([word, *words])) > limit:
            break
        words.insert(0, word)
    return [_Atom(" ".join(words), " ")] if words else []


def _chunk_section(section: Section, limit: int, overlap: int, count: Count) -> list[str]:
    texts: list[str] = []
    current: list[_Atom] = []
    repeated = 0  # how many atoms at the start of ``current`` repeat the previous chunk
    for unit in _units(section, limit, count):
        if current and count(_render(current + unit)) > limit:
            if len(current) > repeated:
                texts.append(_render(current))
                current = _overlap(current, overlap, count)
            else:
                current = []
            repeated = len(current)
            if current and count(_render(current + unit)) > limit:
                current, repeated = [], 0
        current += unit
    if len(current) > repeated:
        texts.append(_render(current))
    return texts
