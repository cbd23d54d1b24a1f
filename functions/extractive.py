"""The extractive answer: the sentence of the passages that best answers a question, quoted.

It is shown in place of an answer whose facts its passages do not state, and its first words
start a grounded answer for the model to go on from (functions/pipeline.py). A sentence is
chosen by what a reader would check first:

- the question's content words it shares, the rarer among the candidate sentences the more
  (IDF), those only in where its passage comes from (document, section) counting half;
- what the question asks for: an amount ("how much", "cuánto me dan"), a time of day, a
  duration or frequency, a day or date, a count, a command, a person: a sentence stating one
  of that kind scores (its facts read as the fact check reads them, functions/factcheck.py);
- the question's names (a capitalised word inside it: "Boston", "Madrid"): in the sentence, or
  at least in its passage or where that comes from; a sentence whose passage names none of
  them is about something else (Madrid's rule for a Boston question);
- the passage's rank: the search ranks by meaning too (its embeddings read both languages),
  which words shared cannot do for a question asked in the other language.

Measured on the evaluation set's captured passages (bench/prompt_layout.py, step 2's "no
model" row and docs/benchmarks.md): the sentence chosen carries the question's fact for 39 of
48 answerable questions, against 31 when chosen by shared words alone. A plain-text heading
glued to its paragraph ("PRODUCTION ACCESS Nobody gets…") no longer reads as a person's name,
"el primer lunes de cada mes" says how often with no figure in it, and "GDPR" names what a
Spanish sentence's "RGPD" names.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from functions.factcheck import (
    ADDRESS,
    BACKTICKED,
    OPTION,
    TIME,
    TOKEN,
    WORD,
    calendar,
    fold,
    is_name,
    money_amounts,
    numbers,
    opens_sentence,
)
from functions.quotes import ACRONYM, acronym_key, content_keys, sentences
from shared.knowledge.language import SPANISH, detect
from shared.knowledge.search import Passage

# What a question asks for, read from its words (folded: no accents, lower case), and how much
# a sentence stating a fact of that kind is worth (a count is the least telling: most
# sentences hold a number).
_ASKS = (
    ("amount", 1.5, re.compile(
        r"\b(how much|paid|pay|salary|sueldo|cobr\w*|pag\w*|dinero|cuesta|cost\w*|allowance|"
        r"budget|presupuesto|dietas?|reimburs\w*|stipend|match)\b")),
    ("time", 1.5, re.compile(r"\b(a que hora|what time|at what time)\b")),
    ("duration", 1.25, re.compile(
        r"\b(how long|how quickly|how soon|how often|cuanto tiempo|en cuanto tiempo|"
        r"cada cuanto|con cuanta antelacion|how far in advance|within how)\b")),
    ("day", 1.25, re.compile(
        r"\b(que dia|what day|which day|until when|hasta cuando|hasta que (dia|fecha)|by when|"
        r"what date|que fecha)\b|^\W*(when|cuando)\b|\bwhen (does|do|is|are|can|should|must)\b")),
    ("count", 0.75, re.compile(r"\b(cuant[oa]s|how many)\b")),
    ("command", 1.5, re.compile(
        r"\b(comando|command|ejecut\w*|what do i run|which \w+ do i run|que escribo|flag|"
        r"opcion)\b")),
    ("person", 1.0, re.compile(r"\b(who|whom|quien|quienes)\b")),
)
_UNITS = re.compile(r"\b(minut\w*|min|horas?|hours?|dias?|days?|seman\w*|weeks?|mes(es)?|"
                    r"months?|anos?|years?|trimestr\w*|quarters?|laborables?|business|weekly|"
                    r"daily|diari\w*|cada|every)\b")
# How often, without a figure: "el primer lunes de cada mes", "every week", "monthly".
_EVERY = re.compile(r"\b(cada|every|each) (dia|semana|mes|ano|trimestre|day|week|month|year|"
                    r"quarter|lunes|martes|miercoles|jueves|viernes|monday|tuesday|wednesday|"
                    r"thursday|friday)\b|\b(daily|weekly|monthly|yearly|annually|diari[ao]s?|"
                    r"semanal(es)?|mensual(es)?|anual(es)?)\b")
_DATE = re.compile(r"\b\d{1,2} de [a-z]+|\b\d{1,2}(st|nd|rd|th)\b")
_PHONE = re.compile(r"\b\d{3} \d{3} \d{3}\b|\+\d[\d ]{7,}")
RANK_WEIGHT = 2.5  # what being the search's first passage is worth, in shared words


@dataclass(frozen=True)
class Extract:
    sentence: str
    passage: Passage


def asks(question: str) -> dict[str, float]:
    """The kinds of fact ``question`` asks for, each with its weight."""
    folded = fold(question)
    return {kind: weight for kind, weight, words in _ASKS if words.search(folded)}


def states(sentence: str) -> set[str]:
    """The kinds of fact ``sentence`` states."""
    folded = fold(sentence)
    found = set()
    if money_amounts(sentence) or "%" in sentence:
        found.add("amount")
    if TIME.search(sentence):
        found.add("time")
    values = numbers(sentence)
    if (values and _UNITS.search(folded)) or _EVERY.search(folded):
        found.add("duration")
    if calendar(sentence) or _DATE.search(folded):
        found.add("day")
    if values:
        found.add("count")
    if BACKTICKED.search(sentence) or OPTION.search(sentence):
        found.add("command")
    if ADDRESS.search(sentence) or _PHONE.search(sentence) or any(
            is_name(m.group(0)) and not opens_sentence(sentence, m.start())
            for m in TOKEN.finditer(sentence)):
        found.add("person")
    return found


def _names(question: str) -> list[str]:
    """The question's names, folded and cut to 5 letters as :func:`content_keys` cuts words
    (an acronym by its letters, :func:`acronym_key`)."""
    return [acronym_key(m.group(0)) if ACRONYM.fullmatch(m.group(0)) else fold(m.group(0))[:5]
            for m in TOKEN.finditer(question)
            if sum(c.isalpha() for c in m.group(0)) >= 3 and is_name(m.group(0))
            and not opens_sentence(question, m.start())]


def _stems(text: str) -> set[str]:
    """``text``'s words as :func:`_names` gives them."""
    return ({w[:5] for w in WORD.findall(fold(text))}
            | {acronym_key(a) for a in ACRONYM.findall(text)})


def extract(question: str, passages: Sequence[Passage]) -> Extract | None:
    """The sentence of ``passages`` that best answers ``question`` (see the module's
    docstring); None when none shares a content word with it or states what it asks for."""
    wanted, kinds, names = content_keys(question), asks(question), _names(question)
    candidates = [(rank, position, sentence, passage)
                  for rank, passage in enumerate(passages)
                  for position, sentence in enumerate(sentences(passage.content))]
    keyed = [content_keys(sentence) for _, _, sentence, _ in candidates]
    df = Counter(key for keys in keyed for key in keys & wanted)
    # Where each passage comes from, and all it says: read once, not once a sentence.
    whence = [(content_keys(f"{p.citation} {p.title or ''}"),
               _stems(f"{p.citation} {p.title or ''} {p.content}")) for p in passages]
    best: tuple[float, int, int] | None = None
    found: Extract | None = None
    for (rank, position, sentence, passage), keys in zip(candidates, keyed, strict=True):
        where_keys, said_where = whence[rank]
        shared = sum(math.log(1 + len(candidates) / (1 + df[k])) for k in wanted & keys)
        shared += 0.5 * len((wanted & where_keys) - keys)
        answered = sum(weight for kind, weight in kinds.items() if kind in states(sentence))
        said = _stems(sentence)
        if shared == 0 and answered == 0 and not any(n in said for n in names):
            continue  # (a name shared is a word shared, but for an acronym spelt otherwise)
        named = sum(1.5 if n in said else 1.0 if n in said_where else -2.0 for n in names)
        score = (shared + 2 * answered + named + RANK_WEIGHT / (1 + rank)
                 + (0.3 if any(c.isdigit() for c in sentence) else 0.0))
        key = (score, -rank, -position)
        if best is None or key > best:
            best, found = key, Extract(sentence, passage)
    return found


def quoted_answer(question: str, found: Extract) -> str:
    """The extract as an answer, in the question's language."""
    if detect(question) == SPANISH:
        return f"Según {found.passage.citation}: «{found.sentence}»"
    return f"According to {found.passage.citation}: \"{found.sentence}\""


def no_answer(question: str, passages: Sequence[Passage]) -> str:
    """"I don't know", with the closest sources."""
    sources = ", ".join(dict.fromkeys(p.citation for p in passages))
    if detect(question) == SPANISH:
        return f"No lo sé: los documentos no lo dicen. Lo más cercano: {sources}."
    return f"I don't know: the documents don't say. The closest sources: {sources}."
