"""The extractive answer: the sentence of the passages that best answers a question, quoted.

It is shown in place of an answer whose facts its passages do not state, and its first words
start a grounded answer for the model to go on from (functions/pipeline.py). A sentence is
chosen by what a reader would check first:

- the question's content words it shares, the rarer among the candidate sentences the more
  (IDF), those only in where its passage comes from (document, section) counting half; in a
  passage written in the other language than the question, a word also meets its translation
  from the glossary (functions/glossary.txt: "pantalla" for "screen", "dietas" for "per
  diem"), worth as much as a word met as written, less only to break a tie (within one
  language the glossary's synonyms are not used: "taxis" does not meet "cab");
- what the question asks for: an amount ("how much", "cuánto me dan", a limit: "the most I
  can spend", "hasta cuánto", a percentage; "70 cents" is one), a time of day, a duration or
  frequency ("cuánto tarda"), a day or date ("¿en qué mes…?" too), a count, a command, a
  person (a name or a role, "the on-call engineer"; not an acronym, "USB"), a phone number,
  a chat channel ("#dev-env"): a sentence stating one of that kind scores (its facts read as
  the fact check reads them, functions/factcheck.py);
- the question's names (a capitalised word inside it: "Boston", "Madrid", not "Monday"; a
  place of several words that functions/places.txt lists, "New York", all its words): in the
  sentence, or at least in its passage or where that comes from, or for a city, its country
  (functions/places.txt: a US policy for a Boston question, worth :data:`REGION`); a sentence
  whose passage names none of them is about something else (Madrid's rule for a Boston
  question);
- the passage's rank: the search ranks by meaning too (its embeddings read both languages),
  which words shared cannot do for a question asked in the other language.

Measured on the evaluation set's captured passages (bench/prompt_layout.py, step 2's "no
model" row and docs/benchmarks.md): the sentence chosen carries the question's fact for 42 of
48 answerable questions (39 without the glossary), against 31 when chosen by shared words
alone; 45 since cities are found by their country, short words meet their plurals and the
search keeps seats for the other language (on two held-out sets written apart from it, 13
and 14 of 24; 45, 14 and 16 since a limit asks an amount, a place or a country may take
two words, and a phone number and a chat channel may be asked for, found on the second set's
misses: docs/benchmarks.md, "Answers to questions written apart"). A plain-text heading
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
from functions.glossary import about, senses, senses_of, tokens, translations
from functions.quotes import ACRONYM, acronym_key, content_keys, sentences
from functions.units import lasts
from shared.knowledge.language import SIMPLE, SPANISH, detect
from shared.knowledge.search import Passage

# Money as what a question is about ("recibos de sueldo", "a paid side project"), and money as
# what it asks: an amount is asked outright only with the second or with "how much", "cuánto".
_PAID = (r"paid|pay|salary|sueldo|cobr\w*|dinero|"
         r"pag(a|as|an|o|amos|ado|ada|ados|adas|ar|ara|aran|ue|uen|ando)")  # not "PagerDuty"
_SPENT = (r"how much|cuesta|cost\w*|price|precio|deductible|franquicia|copay|copago|allowance|"
          r"budget|presupuesto|dietas?|reimburs\w*|stipend|match|spend|spending|gastar|limit|"
          r"limite|tope|maximo|maximum|the most|hasta cuanto|"
          r"cuanto (pone|aporta)|porcentaje|percentage|what percent|que tanto por ciento")
_AMOUNT_OUTRIGHT = re.compile(rf"\b({_SPENT}|cuant[oa])\b")
# What a question asks for, read from its words (folded: no accents, lower case), and how much
# a sentence stating a fact of that kind is worth (a count is the least telling: most
# sentences hold a number).
_ASKS = (
    ("amount", 1.5, re.compile(rf"\b({_SPENT}|{_PAID})\b")),
    ("time", 1.5, re.compile(r"\b(a que hora|what time|at what time)\b")),
    ("duration", 1.25, re.compile(
        r"\b(how long|how quickly|how soon|how often|cuanto tiempo|en cuanto tiempo|cuanto dura|"
        r"cuanto (\w+ )?tarda\w*|"
        r"cada cuanto|con cuanta antelacion|how far in advance|within how)\b")),
    ("day", 1.25, re.compile(
        r"\b(que dia|what day|which day|until when|hasta cuando|hasta que (dia|fecha)|by when|"
        r"what date|que fecha|que mes|(what|which) month)\b|^\W*(when|cuando)\b|"
        r"\bwhen (does|do|is|are|can|should|must)\b")),
    ("count", 0.75, re.compile(r"\b(cuant[oa]s|how many)\b")),
    ("command", 1.5, re.compile(
        r"\b(comando|command|ejecut\w*|what do i run|which \w+ do i run|que escribo|flag|"
        r"opcion)\b")),
    ("person", 1.0, re.compile(r"\b(who|whom|quien|quienes)\b")),
    ("phone", 1.5, re.compile(r"\b(phone|telephone|telefono|what number|which number|"
                              r"que numero|a que numero|do i call|should i call|llamo|llamar)\b")),
    ("channel", 1.5, re.compile(r"\b(channel|canal)\b")),
)
# "When I'm on call, how much…?": the question is what follows the comma.
_LEADING_CLAUSE = re.compile(
    r"^\W*(when|if|cuando|si)\b[^,?]*,\s*(?=(who|whom|what|how|which|where|when|why|do|does|"
    r"is|are|can|should|quien|que|cual|como|donde|cuando|cuanto|cuanta|cuantos|cuantas|"
    r"puedo|hay|tengo)\b)")
# How often, without a figure: "el primer lunes de cada mes", "every week", "monthly".
_EVERY = re.compile(r"\b(cada|every|each) (dia|semana|mes|ano|trimestre|day|week|month|year|"
                    r"quarter|lunes|martes|miercoles|jueves|viernes|monday|tuesday|wednesday|"
                    r"thursday|friday)\b|\b(daily|weekly|monthly|yearly|annually|diari[ao]s?|"
                    r"semanal(es)?|mensual(es)?|anual(es)?)\b")
_DATE = re.compile(r"\b\d{1,2} de [a-z]+|\b\d{1,2}(st|nd|rd|th)\b|\b(dia|day) \d{1,2}\b")
# A command run in a sentence without backticks: "ejecuta acme-vpn doctor", "run make-env.sh".
_RUN = re.compile(r"\b(run|ejecuta|ejecutar|type|escribe|lanza)\s+[a-z]\w*[-_./][\w./-]*",
                  re.IGNORECASE)
_PHONE = re.compile(r"\b\d{3} \d{3} \d{3}\b|\+\d[\d ]{7,}")
_CENTS = re.compile(r"\b\d+(?:[.,]\d+)? (cents?|centimos?)\b")  # "70 cents per mile"
_CHANNEL = re.compile(r"(?<![\w/#])#[a-z][\w-]*", re.IGNORECASE)  # a chat channel: #dev-env
CODE_WEIGHT = 1.0  # a question's code in the sentence, beside what its names are worth
# Who is named by a role as often as by a name: "the on-call engineer", "el responsable".
_ROLE_NOUN = re.compile(r"\b(engineers?|managers?|leads?|commanders?|owners?|admins?|"
                        r"administrators?|ingenier[oa]s?|responsables?|jef[ea]s?|lider|"
                        r"director[a]?)\b")
RANK_WEIGHT = 2.5  # what being the search's first passage is worth, in shared words
REGION = 0.5  # a place's country named where its name is not: "US Employees" for Boston
# A word met in the other language: worth a word met as written, which only wins a tie.
TRANSLATED = 0.99


@dataclass(frozen=True)
class Extract:
    sentence: str
    passage: Passage


def _asking(question: str) -> str:
    """The question itself, folded: in Spanish what follows the last "¿", in either language
    what follows a leading "when…," or "if…," clause."""
    folded = fold(question).rsplit("¿", 1)[-1]
    clause = _LEADING_CLAUSE.match(folded)
    return folded[clause.end():] if clause else folded


def asks(question: str) -> dict[str, float]:
    """The kinds of fact ``question`` asks for, each with its weight, read from the question
    itself ("Cuando salta un incidente, ¿quién…?" asks for a person, not a day)."""
    folded = _asking(question)
    return {kind: weight for kind, weight, words in _ASKS if words.search(folded)}


def asks_outright(question: str) -> set[str]:
    """The kinds :func:`asks` finds, an amount only where asked outright: "how much",
    "cuánto" or a word of what is spent or allowed, not a word of pay alone ("¿En qué
    plataforma descargo mis recibos de sueldo?" asks for a name)."""
    kinds = set(asks(question))
    if "amount" in kinds and not _AMOUNT_OUTRIGHT.search(_asking(question)):
        kinds.discard("amount")
    return kinds


def states(sentence: str) -> set[str]:
    """The kinds of fact ``sentence`` states."""
    folded = fold(sentence)
    found = set()
    if money_amounts(sentence) or "%" in sentence or _CENTS.search(folded):
        found.add("amount")
    if TIME.search(sentence):
        found.add("time")
    values = numbers(sentence)
    if lasts(sentence) or _EVERY.search(folded):  # "within five business days", "weekly"
        found.add("duration")
    if calendar(sentence) or _DATE.search(folded):
        found.add("day")
    if values:
        found.add("count")
    if BACKTICKED.search(sentence) or OPTION.search(sentence) or _RUN.search(sentence):
        found.add("command")
    if _PHONE.search(sentence):
        found.add("phone")
    if _CHANNEL.search(sentence):
        found.add("channel")
    # a person: a role, or a capitalised word inside the sentence that is no acronym or code
    # ("USB storage devices are blocked" names no one who approves an exception)
    if ADDRESS.search(sentence) or _PHONE.search(sentence) or _ROLE_NOUN.search(folded) or any(
            is_name(word) and not opens_sentence(sentence, m.start())
            and not ACRONYM.fullmatch(word) and not any(c.isdigit() for c in word)
            for m in TOKEN.finditer(sentence) for word in [m.group(0)]):
        found.add("person")
    return found


def _name_tokens(question: str) -> list[str]:
    """The question's names as written: a capitalised word that does not open its sentence,
    of 3 letters or more, or a place of several words that places.txt lists ("New York")."""
    return [token for token, start, place in tokens(question)
            if (place and any(map(is_name, token.split())))
            or (not place and sum(c.isalpha() for c in token) >= 3 and is_name(token)
                and not opens_sentence(question, start) and not calendar(token))]


def _forms(name: str) -> tuple[frozenset[str], ...]:
    """The forms a question's name may be written in, each the words a sentence must hold:
    folded and cut to 5 letters as :func:`content_keys` cuts words; an acronym also by its
    letters in any order (:func:`acronym_key`: "RGPD" for "GDPR"); a name the glossary
    translates also in the other language ("España" for "Spain")."""
    if ACRONYM.fullmatch(name):
        return frozenset({acronym_key(name)}), frozenset({fold(name)[:5]})
    return tuple(frozenset(word[:5] for word in fold(form).split())
                 for form in (name, *translations(name)))


def _meets(forms: tuple[frozenset[str], ...], said: set[str]) -> bool:
    """Whether words ``said`` (as :func:`_stems` gives them) hold one of a name's forms."""
    return any(form <= said for form in forms)


def _stems(text: str) -> set[str]:
    """``text``'s words as :func:`_forms` gives them."""
    return ({w[:5] for w in WORD.findall(fold(text))}
            | {acronym_key(a) for a in ACRONYM.findall(text)})


_CODE_RUN = re.compile(r"[\w()-]+")  # read run by run: linear in the question's length


def squash(text: str) -> str:
    """``text`` folded, letters and digits only: "401(k)" is "401k", "W-2s" is "w2s"."""
    return re.sub(r"\W|_", "", fold(text))


def _codes(question: str) -> set[str]:
    """The question's codes, letters and digits together, squashed ("401k", "w2", "sev2")."""
    return {code for m in _CODE_RUN.finditer(question)
            if len(code := squash(m.group(0))) >= 2
            and any(c.isalpha() for c in code) and any(c.isdigit() for c in code)}


def extract(question: str, passages: Sequence[Passage]) -> Extract | None:
    """The sentence of ``passages`` that best answers ``question`` (see the module's
    docstring); None when none shares a content word with it or states what it asks for."""
    wanted, kinds, named_as = content_keys(question), asks(question), _name_tokens(question)
    names = [_forms(name) for name in named_as]
    codes = _codes(question)
    regions = [about(name) for name in named_as]  # a city's country, a country's places
    candidates = [(rank, position, sentence, passage)
                  for rank, passage in enumerate(passages)
                  for position, sentence in enumerate(sentences(passage.content))]
    meant = {key: senses(key) for key in wanted}
    asked_in = detect(question)
    # Passages written in the other language (or either language unclear): the glossary's.
    other = [asked_in == SIMPLE or detect(p.content) != asked_in for p in passages]

    def met(keys: set[str], translated: bool) -> dict[str, float]:
        """The question's words that ``keys`` state, each with what it is worth: 1 as
        written, :data:`TRANSLATED` in the other language (when ``translated``)."""
        found = dict.fromkeys(wanted & keys, 1.0)
        if translated:
            said = senses_of(keys)
            found |= {key: TRANSLATED for key, meanings in meant.items()
                      if key not in found and meanings & said}
        return found

    keyed = [met(content_keys(sentence), other[rank]) for rank, _, sentence, _ in candidates]
    df = Counter(key for keys in keyed for key in keys)
    # Where each passage comes from, and all it says: read once, not once a sentence.
    whence = [(met(content_keys(f"{p.citation} {p.title or ''}"), other[rank]),
               _stems(said), [about is not None and about(said) for about in regions])
              for rank, p in enumerate(passages)
              for said in [f"{p.citation} {p.title or ''} {p.content}"]]
    best: tuple[float, int, int] | None = None
    found: Extract | None = None
    for (rank, position, sentence, passage), keys in zip(candidates, keyed, strict=True):
        where_keys, said_where, in_region = whence[rank]
        # fsum: the same total in any order of the words (a set's order changes by process)
        shared = math.fsum(worth * math.log(1 + len(candidates) / (1 + df[k]))
                           for k, worth in keys.items())
        shared += 0.5 * math.fsum(worth for k, worth in where_keys.items() if k not in keys)
        answered = sum(weight for kind, weight in kinds.items() if kind in states(sentence))
        said = _stems(sentence)
        if shared == 0 and answered == 0 and not any(_meets(n, said) for n in names):
            continue  # (a name shared is a word shared, but for an acronym spelt otherwise)
        named = sum(1.5 if _meets(n, said) else 1.0 if _meets(n, said_where)
                    else REGION if region else -2.0
                    for n, region in zip(names, in_region, strict=True))
        if codes:  # a code counts where the sentence holds it ("W-2s are posted by…")
            squashed = squash(sentence)
            named += CODE_WEIGHT * sum(code in squashed for code in codes)
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
