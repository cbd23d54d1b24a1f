"""Does an answer say what its sources say? Every fact in it must be found in the passages.

A small model cites the right document and writes the wrong figure under it ("24 days" where
the passage says 27), and a citation makes a wrong figure look checked. So before an answer
drawn from the knowledge base is shown, the facts it states are looked for in the passages it
drew on:

- numbers, by value: "0.26" is "0,26", "1500" is "1,500", "4 %" is "4%", "six" and "seis"
  are 6, "15th" is 15; a number written with a currency ("$250", "150 €", "80 euros") must
  carry the same currency in the passages, where they give it one;
- times ("9:30" is "09:30"), and months and weekdays in either language ("March" is "marzo");
- codes: a word with digits and letters ("SEV2", "pg-mad-01"), an option ("--dry-run"), an
  address ("privacidad@acme.com", "https://…"), a path, anything between backticks;
- proper names and acronyms: a capitalised word that does not open a sentence ("Lisbon",
  "PTO");
- quoted phrases.

Case, accents and spacing do not count. An answer is supported when every fact it states is
found; what is missing is named (:attr:`Verdict.unsupported`). The passages are the only
evidence: a name taken from the question does not count, so "Lisbon staff get 23 days" over a
passage about Madrid is caught. The words "one", "uno", "una" and "un" are articles far more
often than numbers, and are not taken as facts.

:func:`extract` builds the answer shown instead of one that fails: the sentence of the
passages that best answers the question, quoted, with its source. The sentences of a passage,
and the one quoted under an answer, are functions/quotes.py's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from shared.knowledge.search import Passage


def listed(words: str) -> list[str]:
    """``words`` split at spaces: a long list of words written as one string."""
    return words.split()


NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "thousand": 1000,
    "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
    "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
    "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20,
    "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70,
    "ochenta": 80, "noventa": 90, "cien": 100, "ciento": 100, "mil": 1000,
}
# Articles far more often than numbers: evidence in a passage, never a fact in an answer.
_ONE_WORDS = {"one": 1, "uno": 1, "una": 1, "un": 1}
_MONTHS = listed("january february march april may june july august september october "
                  "november december")
_MESES = listed("enero febrero marzo abril mayo junio julio agosto septiembre octubre "
                 "noviembre diciembre")
_DAYS = listed("monday tuesday wednesday thursday friday saturday sunday")
_DIAS = listed("lunes martes miercoles jueves viernes sabado domingo")
_CALENDAR = {**{w: f"month{i}" for i, w in enumerate(_MONTHS)},
             **{w: f"month{i}" for i, w in enumerate(_MESES)},
             **{w: f"day{i}" for i, w in enumerate(_DAYS)},
             **{w: f"day{i}" for i, w in enumerate(_DIAS)},
             "setiembre": "month8"}
# "may" is a verb far more often than a month: only "May" with a capital counts.
_LOWER_NOT_CALENDAR = {"may"}
_CURRENCIES = {"€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "$": "USD",
               "usd": "USD", "dollar": "USD", "dollars": "USD", "dolar": "USD",
               "dolares": "USD", "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP",
               "libras": "GBP"}

# A citation mark: "[1]", "[1, 2]", "[1-3]".
CITATION = re.compile(r"\[\d+(?:\s*[,–-]\s*\d+)*\]")  # noqa: RUF001 - en dash: [1-3] typeset
TIME = re.compile(r"(?<![\d:])(\d{1,2})[:h](\d{2})(?![\d:])")
_NUMBER = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)*)(?:st|nd|rd|th|º|ª|o|a)?(?![\w])")
_MONEY_BEFORE = re.compile(r"([€$£])\s?(\d[\d.,]*)")
_MONEY_AFTER = re.compile(r"(?<![\d.,])(\d[\d.,]*)\s?(€|\$|£|eur\b|usd\b|gbp\b|euros?\b|dollars?\b|"
                          r"d[oó]lar(?:es)?\b|pounds?\b|libras\b)", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“«„]([^\"”»“«]{3,200})[\"”»]")
BACKTICKED = re.compile(r"`([^`]{1,200})`")
ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b|https?://\S+")
OPTION = re.compile(r"(?<![\w-])--?[a-zA-Z][\w-]*")
TOKEN = re.compile(r"[^\W_][\w'’/-]*[^\W_]|[^\W_]")  # noqa: RUF001 - typeset apostrophes
WORD = re.compile(r"[^\W\d_]+")


def fold(text: str) -> str:
    """Lower case, no accents, one space between words: how facts are compared."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.split())


# Longer digit runs (an identifier, a key pasted into a document) are compared as written, not
# by value: Python refuses to turn more than 4,300 digits into a number.
MAX_DIGITS = 40


def number_values(raw: str) -> set[Fraction]:
    """What a written number can mean: "0,26" is 0.26; "1,500" is 1500 or 1.5 (a separator
    before groups of three digits may be either). Empty for a run of over
    :data:`MAX_DIGITS` digits."""
    groups = re.split(r"[.,]", raw)
    if not all(g.isdigit() for g in groups) or len(raw) > MAX_DIGITS:
        return set()
    if len(groups) == 1:
        return {Fraction(int(raw))}
    head, last = "".join(groups[:-1]), groups[-1]
    values = {Fraction(int(head + last), 10 ** len(last))}  # the last separator a decimal point
    if all(len(g) == 3 for g in groups[1:]):
        values.add(Fraction(int(head + last)))  # every separator a thousands one
    return values


def numbers(text: str) -> set[Fraction]:
    """Every value ``text`` states, in digits or in words ("6", "six" and "seis" alike)."""
    values: set[Fraction] = set()
    for m in _NUMBER.finditer(text):
        values |= number_values(m.group(1))
    return values | {Fraction(NUMBER_WORDS[w]) for w in WORD.findall(fold(text))
                     if w in NUMBER_WORDS}


def calendar(text: str) -> set[str]:
    """The months and weekdays ``text`` names, in either language ("March" is "marzo")."""
    return {_CALENDAR[w] for w in WORD.findall(fold(text))
            if w in _CALENDAR and w not in _LOWER_NOT_CALENDAR}


@dataclass(frozen=True)
class _Amount:
    values: frozenset[Fraction]
    currency: str


def money_amounts(text: str) -> list[_Amount]:
    found = [_Amount(frozenset(number_values(m.group(2).rstrip(".,"))),
                     _CURRENCIES[m.group(1)]) for m in _MONEY_BEFORE.finditer(text)]
    found += [_Amount(frozenset(number_values(m.group(1).rstrip(".,"))),
                      _CURRENCIES[fold(m.group(2))]) for m in _MONEY_AFTER.finditer(text)]
    return [a for a in found if a.values]


@dataclass
class _Evidence:
    """What the passages state, in the forms facts are compared in."""

    text: str  # folded
    words: set[str] = field(default_factory=set)
    numbers: set[Fraction] = field(default_factory=set)
    amounts: list[_Amount] = field(default_factory=list)
    times: set[tuple[int, int]] = field(default_factory=set)
    calendar: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, texts: Iterable[str]) -> _Evidence:
        raw = "\n".join(texts)
        folded = fold(raw)
        evidence = cls(text=folded, words=set(WORD.findall(folded)))
        for m in TIME.finditer(raw):
            evidence.times.add((int(m.group(1)), int(m.group(2))))
        for m in _NUMBER.finditer(raw):
            evidence.numbers |= number_values(m.group(1))
        for word in evidence.words:
            value = NUMBER_WORDS.get(word) or _ONE_WORDS.get(word)
            if value:
                evidence.numbers.add(Fraction(value))
            if word in _CALENDAR:
                evidence.calendar.add(_CALENDAR[word])
        evidence.amounts = money_amounts(raw)
        return evidence

    def has_amount(self, amount: _Amount) -> bool:
        """The number is there, with this currency where the passages give it one."""
        if not amount.values & self.numbers:
            return False
        with_currency = [a for a in self.amounts if a.values & amount.values]
        return not with_currency or any(a.currency == amount.currency for a in with_currency)

    def has_phrase(self, phrase: str) -> bool:
        """``phrase``'s words, in order, somewhere in the passages (punctuation aside)."""
        wanted = " ".join(re.findall(r"\w+", fold(phrase)))
        said = " ".join(re.findall(r"\w+", self.text))
        return bool(wanted) and f" {wanted} " in f" {said} "


@dataclass(frozen=True)
class Verdict:
    """What an answer states and which of it the passages do not."""

    facts: tuple[str, ...]
    unsupported: tuple[str, ...]

    @property
    def supported(self) -> bool:
        return not self.unsupported


_OPENERS = frozenset(".!?:;•*>#|-–—([«\"“¿¡")  # noqa: RUF001 - dashes of either kind


def opens_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` opens a sentence, a line or a list item."""
    before = text[:start].rstrip()
    if not before or "\n" in text[len(before):start]:
        return True
    return before[-1] in _OPENERS or bool(re.search(r"(?:^|\s)\d+[.)]$", before[-6:]))


def check(answer: str, passages: Sequence[str]) -> Verdict:
    """The facts ``answer`` states, and those not found in ``passages``."""
    return _check(answer, _Evidence.of(passages))


def check_values(values: Iterable[str], passages: Sequence[str]) -> Verdict:
    """The facts ``values`` state (the values of a JSON answer, each read alone), and those
    not found in ``passages``. A short value is a value, not a sentence: a capital at its
    start makes it a name ("Lisbon"), as one within a sentence does."""
    evidence = _Evidence.of(passages)
    facts: list[str] = []
    missing: list[str] = []
    for value in values:
        verdict = _check(value, evidence, value=len(value.split()) <= MAX_VALUE_WORDS
                         and not _SENTENCE_END.search(value.rstrip(".")))
        facts += verdict.facts
        missing += verdict.unsupported
    return Verdict(tuple(facts), tuple(missing))


class FactGate:
    """Checks an answer while it is written, a sentence at a time, so that only checked text
    is shown.

    Facts are looked for one by one, so a sentence can be judged alone as soon as it ends:
    :attr:`checked` is how much of the answer is made of whole sentences whose facts are all
    in the passages, which is what may be shown. The first sentence that states a fact the
    passages do not stops the gate for good (:meth:`feed` returns the verdict, and
    :attr:`failed` keeps it): the rest of the answer is not shown.
    """

    def __init__(self, passages: Sequence[str]) -> None:
        self._evidence = _Evidence.of(passages)
        self.checked = 0
        self.failed: Verdict | None = None

    def feed(self, text: str, *, whole: bool = False) -> Verdict | None:
        """Check the sentences ``text`` (the answer so far) has completed since the last
        call (``whole``: all the rest, the answer being complete); the verdict of a sentence
        that fails, else None."""
        if self.failed is not None:
            return self.failed
        end = len(text) if whole else _sentences_end(text)
        if end <= self.checked:
            return None
        # A sentence at a time, so that the sentences before one that fails stay checked
        # (a whole answer comes in one piece).
        stops = [m.end() for m in _SENTENCE_END.finditer(text, self.checked, end)] + [end]
        for stop in stops:
            if stop <= self.checked:
                continue
            verdict = _check(text[self.checked:stop], self._evidence)
            if not verdict.supported:
                self.failed = verdict
                return verdict
            self.checked = stop
        return None


# A stop and the spaces after it (they carry no fact: the text up to the next word may show).
_SENTENCE_END = re.compile(r"[.!?…:;]\s+|\n\s*")


def _sentences_end(text: str) -> int:
    """Where the last whole sentence of ``text`` ends, with the spaces after it (a stop
    followed by a space, or a line's end): a stop with nothing after it yet may be a decimal
    point ("0." of "0.26")."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return ends[-1] if ends else 0


# A JSON value of at most this many words, without a stop inside, is a value ("Lisbon", "HR
# portal"), whose first word is not a sentence's.
MAX_VALUE_WORDS = 4


def _check(answer: str, evidence: _Evidence, *, value: bool = False) -> Verdict:
    text = CITATION.sub(" ", answer)
    text = re.sub(r"\*\*|__", "", text)
    facts: list[str] = []
    missing: list[str] = []

    def fact(shown: str, found: bool) -> None:
        facts.append(shown)
        if not found:
            missing.append(shown)

    for m in _QUOTED.finditer(text):
        fact(m.group(0), evidence.has_phrase(m.group(1)))
    for m in BACKTICKED.finditer(text):
        fact(m.group(1), fold(m.group(1)) in evidence.text)
    text = BACKTICKED.sub(" ", _QUOTED.sub(" ", text))
    for m in ADDRESS.finditer(text):
        fact(m.group(0), fold(m.group(0).rstrip(".,;)")) in evidence.text)
    text = ADDRESS.sub(" ", text)
    for m in OPTION.finditer(text):
        fact(m.group(0), fold(m.group(0)) in evidence.text)
    text = OPTION.sub(" ", text)
    for m in TIME.finditer(text):
        fact(m.group(0), (int(m.group(1)), int(m.group(2))) in evidence.times)
    text = TIME.sub(" ", text)
    amounts = money_amounts(text)
    for amount in amounts:
        fact(_shown(amount), evidence.has_amount(amount))
    priced = set().union(*(a.values for a in amounts)) if amounts else set()
    for m in _NUMBER.finditer(text):
        values = number_values(m.group(1))
        if values and not values <= priced:
            fact(m.group(0), bool(values & evidence.numbers))
        elif not values and len(m.group(1)) > MAX_DIGITS:
            fact(m.group(0), m.group(1) in evidence.text)  # too long for a value: as written
    for m in TOKEN.finditer(text):
        token, folded = m.group(0), fold(m.group(0))
        if any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
            if not _NUMBER.fullmatch(token):  # a code: "SEV2", "pg-mad-01"
                fact(token, folded in evidence.text)
            continue
        if "/" in token.strip("/") and not any(c.isdigit() for c in token):
            fact(token, folded in evidence.text)  # a path: "payments/", "auth/x"
            continue
        if folded in NUMBER_WORDS:
            fact(token, Fraction(NUMBER_WORDS[folded]) in evidence.numbers)
        elif folded in _CALENDAR and (folded not in _LOWER_NOT_CALENDAR or token[0].isupper()):
            fact(token, _CALENDAR[folded] in evidence.calendar)
        elif is_name(token) and (value or not opens_sentence(text, m.start())):
            parts = WORD.findall(folded)
            fact(token, bool(parts) and all(p in evidence.words for p in parts))
    return Verdict(tuple(facts), tuple(missing))


# Capitalised mid-sentence for grammar's sake, not names.
_NOT_NAMES = frozenset({"i'm", "i've", "i'll", "i'd", "ok"})


def is_name(token: str) -> bool:
    """A capitalised word ("Lisbon", "McKay") or an acronym ("PTO"), not a lone "I"."""
    letters = sum(c.isalpha() for c in token)
    return letters >= 2 and token[0].isupper() and fold(token) not in _NOT_NAMES


def _shown(amount: _Amount) -> str:
    value = min(amount.values)
    return f"{amount.currency} {float(value):g}"


def evidence(passage: Passage) -> list[str]:
    """What a passage states: its text, and where it comes from (its citation names the
    document, section and page, and a quote from it is shown under that name)."""
    return [passage.content, passage.citation, passage.title or ""]
