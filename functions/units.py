"""What a question counts in, and whether a sentence states a quantity of it.

A best sentence (functions/extractive.py ``extract``) may state a fact of the kind asked and
still not answer: "¿Cuántos días a la semana puedo teletrabajar?" over "La jornada es de 40
horas semanales" (hours, not days), "How many hours does the Prod Access 101 course take?"
over "Complete the Prod Access 101 course…, write access after your first month" (a number
and a unit, but no quantity of time), "¿Hay un tope por comensal…?" over "se pagan 0,26 € por
kilómetro" (per kilometre, not per diner). functions/answerability.py reads them with:

- :func:`quantities`: the units of time a sentence states a quantity in. A quantity is a
  figure (in digits or words, as functions/factcheck.py reads them) followed by its unit
  with at most two words between ("23 días laborables", "five working days", "18 PTO days",
  "90-day"), or "un", "a", "half" right before it ("un mes", "a week", "half an hour");
  :func:`lasts` says whether there is one (the "duration" ``states`` reads);
- :func:`unit_asked`: the unit of time a count question asks in ("how many PTO days",
  "cuántas semanas de baja");
- :func:`counted` and :func:`counts`: what else a count question counts ("how many parking
  spots") and whether a sentence gives a figure for it ("12 plazas", by the glossary);
- :func:`per`: what an amount is counted per ("por comensal", "per mile", "al mes",
  "monthly");
- :func:`month_asked` and :func:`names_a_month`: "¿En qué mes…?" is answered by a month's
  name, not by "el día 27 de cada mes".

Units are English and Spanish, singular and plural, compared folded (no accents, lower case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from functions.factcheck import NUMBER_WORDS, calendar, fold
from functions.glossary import senses_of
from functions.quotes import STOP_WORDS, content_key

UNITS = {
    "minute": ("min", "mins", "minute", "minutes", "minuto", "minutos"),
    "hour": ("hour", "hours", "hora", "horas", "hrs"),
    "day": ("day", "days", "dia", "dias", "jornada", "jornadas"),
    "week": ("week", "weeks", "semana", "semanas"),
    "month": ("month", "months", "mes", "meses"),
    "year": ("year", "years", "ano", "anos"),
    "night": ("night", "nights", "noche", "noches"),
    "quarter": ("quarter", "quarters", "trimestre", "trimestres"),
}
_UNIT_OF = {word: unit for unit, words in UNITS.items() for word in words}


def _either(words: Iterable[str]) -> str:
    """An alternation of ``words``, the longest first ("dias" before "dia")."""
    return "|".join(sorted(words, key=len, reverse=True))


_FIGURE = r"\d+(?:[.,]\d+)?|" + _either(NUMBER_WORDS)
_QUANTITY = re.compile(
    rf"(?<![\w.,])(?:(?:{_FIGURE})(?:[\s-]+[^\W\d_]+){{0,2}}?|"
    rf"(?:un|una|uno|one|an?|medio|media|half an?))[\s-]+({_either(_UNIT_OF)})\b")
# "How many" and up to three words: the thing counted ("cuántos días", "how many PTO days").
_HOW_MANY = re.compile(r"\b(?:how many|cuant[oa]s)((?:\s+[^\W\d_]+){1,3})")
# A figure and the words after it ("12 plazas de garaje"); not a floor's "-1".
_FIGURE_OF = re.compile(rf"(?<![\w.,-])(?:{_FIGURE})(?:[\s-]+(?:[^\W\d_]+)){{1,3}}")
# People are counted in many ways ("Harbor seats 10", "a 10-person room"), and times in words
# ("twice", "una vez al año"): not by a figure before the word.
_NOT_BY_FIGURE = frozenset({"people", "person", "persons", "personas", "persona", "gente",
                            "times", "veces"})
_MONTH_ASKED = re.compile(r"\b(?:que mes|(?:what|which) month)\b")

# What an amount is counted per, each word to its unit.
PER = {
    **{word: unit for word, unit in _UNIT_OF.items() if unit not in ("minute", "quarter")},
    **dict.fromkeys(("daily", "diario", "diaria", "diarios", "diarias"), "day"),
    **dict.fromkeys(("weekly", "semanal", "semanales"), "week"),
    **dict.fromkeys(("monthly", "mensual", "mensuales"), "month"),
    **dict.fromkeys(("yearly", "annual", "annually", "anual", "anuales"), "year"),
    **dict.fromkeys(("nightly",), "night"),
    **dict.fromkeys(("person", "persona", "head", "cabeza", "comensal", "comensales", "diner",
                     "diners", "guest", "guests", "invitado", "invitados", "attendee",
                     "asistente", "employee", "empleado", "empleada"), "person"),
    **dict.fromkeys(("kilometro", "kilometros", "km", "kilometer", "kilometre", "mile",
                     "miles", "milla", "millas"), "distance"),
}
# "monthly", "anual": a rate on their own, without "per" or "al"
_RATE_WORDS = frozenset(w for w, unit in PER.items()
                        if w not in _UNIT_OF and unit not in ("person", "distance"))
_PER = re.compile(rf"\b(?:per|por|each|every|cada|al|a la|a|an)\s+({_either(PER)})\b"
                  rf"|\b({_either(_RATE_WORDS)})\b")


def quantities(sentence: str) -> set[str]:
    """The units of time ``sentence`` states a quantity in ("day" for "23 días")."""
    return {_UNIT_OF[m.group(1)] for m in _QUANTITY.finditer(fold(sentence))}


def lasts(sentence: str) -> bool:
    """Whether ``sentence`` states a quantity of time."""
    return _QUANTITY.search(fold(sentence)) is not None


def _counting(question: str) -> list[str]:
    m = _HOW_MANY.search(fold(question))
    return m.group(1).split() if m else []


def unit_asked(question: str) -> str | None:
    """The unit of time a count question asks in: "day" for "¿Cuántos días…?" and for "How
    many PTO days…?" (the first unit among the three words after "how many"); None for any
    other question."""
    return next((_UNIT_OF[w] for w in _counting(question) if w in _UNIT_OF), None)


def counted(question: str) -> set[str]:
    """What a count question counts, as content keys (``functions.quotes.content_key``:
    "parki", "spot" for "How many parking spots…?"); empty for a count of time or of
    people, and for any other question."""
    words = [w for w in _counting(question) if w not in STOP_WORDS and len(w) > 2]
    if any(w in _UNIT_OF or w in _NOT_BY_FIGURE for w in words):
        return set()
    return {content_key(w) for w in words}


def counts(sentence: str, things: set[str]) -> bool:
    """Whether ``sentence`` gives a figure for one of ``things`` (content keys): a figure
    followed, within three words, by one of them or a word of the same meaning in the
    glossary ("12 plazas" for "spots")."""
    meant = senses_of(things)
    for m in _FIGURE_OF.finditer(fold(sentence)):
        keys = {content_key(w) for w in re.findall(r"[^\W\d_]+", m.group(0))}
        if keys & things or senses_of(keys) & meant:
            return True
    return False


def per(text: str) -> set[str]:
    """What ``text`` counts an amount per: "person" for "por comensal", "month" for "al mes"
    and for "monthly", "distance" for "per mile"."""
    return {PER[m.group(1) or m.group(2)] for m in _PER.finditer(fold(text))}


def month_asked(question: str) -> bool:
    """Whether ``question`` asks which month ("¿En qué mes…?", "In which month…?")."""
    return _MONTH_ASKED.search(fold(question)) is not None


def names_a_month(sentence: str) -> bool:
    """Whether ``sentence`` names a month of the year, in either language ("noviembre")."""
    return any(day.startswith("month") for day in calendar(sentence))
