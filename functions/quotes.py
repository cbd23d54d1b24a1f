"""The sentences of a passage, and the one quoted under an answer.

A passage is read a sentence at a time: cut into sentences and list items (:func:`sentences`),
each compared by its content words (:func:`content_keys`: cut to 5 letters, so that
"vacaciones" meets "vacación"). The sentence of a passage that best supports an answer is shown
under it as its source's quote (:func:`supporting`), at most :data:`QUOTE_CHARS` long.

Apart from the fact check (functions/factcheck.py), which reads the facts an answer states
and not its sentences; shared by what picks a sentence: the extractive answer
(functions/extractive.py), the answerability check (functions/answerability.py) and the
sources shown with an answer (functions/api/rag.py, functions/worker/answer.py).
"""

from __future__ import annotations

import re

from functions.factcheck import CITATION, WORD, fold, listed, numbers
from shared.knowledge.search import Passage

STOP_WORDS = frozenset(fold(w) for w in listed(
    "the a an of to in on at for and or is are was be do does did i my me we our you your it "
    "its this that what when where which who how many much can could should would will with "
    "from by as if not no yes have has get there their they them about into than then so "
    "el la los las de del que y en por para con un una unos unas es son se su sus al lo como "
    "mas pero le les ya o u este esta estos estas ese esa eso esto cuando muy sin sobre "
    "tambien hasta hay donde desde todo todos nos ni otro otra yo mi mis me te tu tus cual "
    "cuales cuanto cuantos cuanta cuantas puedo tengo tiene hacer hago si no"
))
# Sentences end at a stop before a capital (or before a list item run into the line: "VPN. - La
# pantalla…", as a document's converter may leave a list), a paragraph's end, or a line that
# starts a list item, a heading, a quote or a table row; other line breaks are a paragraph's
# wrapping.
_SPLIT = re.compile(r"(?<=[.!?])\s+(?:[-•]\s+)?(?=[^\W\d_]|[¿¡\"“«(])|\n\s*\n\s*|"
                    r"\n(?=\s*(?:[-*•#>|]|\d+[.)]\s))")
_NUMBERED = re.compile(r"^\s*(?:#+\s*|\d+(?:\.\d+)*[.)]?\s+)")
_MARKER = re.compile(r"^(?:[#>*•-]+\s*|\d+[.)]\s+)+")


# An acronym: a word of 3 to 6 capitals. English and Spanish often write the same one with its
# letters in another order ("GDPR" and "RGPD", "IMF" and "FMI"), so acronyms are compared by
# their letters (:func:`acronym_key`).
ACRONYM = re.compile(r"\b[A-Z]{3,6}\b")


def acronym_key(acronym: str) -> str:
    """What an acronym is compared by: its letters in any order ("~dgpr" for "GDPR")."""
    return "~" + "".join(sorted(acronym.lower()))


def content_keys(text: str) -> set[str]:
    """A text's content words, each by :func:`content_key`."""
    return {content_key(w) for w in WORD.findall(fold(text))
            if len(w) > 2 and w not in STOP_WORDS}


def content_key(word: str) -> str:
    """A folded word cut to 5 letters, so "vacaciones" meets "vacación"; a word of 4 or 5
    letters ending in "s" loses it first, so a short word meets its plural ("día" and "días",
    "flag" and "flags", which 5 letters do not reach)."""
    return (word[:-1] if 3 < len(word) <= 5 and word.endswith("s") else word)[:5]


def _heading(line: str) -> bool:
    """A short line in capitals, no figure in it past its number ("PRODUCTION ACCESS",
    "2. EL PORTÁTIL"): a plain-text document's heading."""
    words = _NUMBERED.sub("", line).strip()
    return (any(c.isupper() for c in words) and not any(c.islower() or c.isdigit() for c in words)
            and "|" not in words and len(words.split()) <= 8)


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences and list items, markup trimmed; a plain-text heading (a
    line in capitals) is not a sentence, nor the start of the one under it."""
    text = "\n".join("" if _heading(line) else line for line in text.split("\n"))
    out = []
    for piece in _SPLIT.split(text):
        piece = " ".join(_MARKER.sub("", piece.strip()).replace("**", "").split())
        if len(WORD.findall(piece)) >= 3:
            out.append(piece)
    return out


QUOTE_CHARS = 160  # the longest quote shown under an answer or on a citation


def supporting(answer: str, question: str, passage: Passage) -> str | None:
    """The sentence of ``passage`` that best supports ``answer``: the most numbers and
    content words in common with it, then with ``question``; None when it shares none, or,
    for an answer that states figures, when it states none of them (a passage giving 1.000 €
    does not support an answer of $1,500). Shortened at a word to :data:`QUOTE_CHARS`, with
    "…"."""
    # The answer's figures, not its references to sources ("[1]").
    said, asked = content_keys(answer), content_keys(question)
    values = numbers(CITATION.sub(" ", answer))
    best: tuple[int, int, int] | None = None
    found = None
    for position, sentence in enumerate(sentences(passage.content)):
        keys = content_keys(sentence)
        figures = len(values & numbers(sentence))
        if values and not figures:
            continue
        key = (figures + len(said & keys), len(asked & keys), -position)
        if key[0] + key[1] == 0:
            continue
        if best is None or key > best:
            best, found = key, sentence
    return None if found is None else shortened(found)


def shortened(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text``, cut at a word to at most ``limit`` characters with "…" where it was cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    if not text[limit - 1].isspace():  # the cut fell inside a word: that word goes
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"
