"""A bilingual glossary: which English and Spanish words of a workplace say the same thing.

A Spanish question over an English handbook shares few words with the sentence that answers
it ("¿cuánto me dan de dietas al día…?" and "a per diem of $75 per day"), and the search's
embeddings rank passages, not the sentences inside them. The words of ``glossary.txt`` (one
meaning a line: English words, then Spanish ones) let :func:`functions.extractive.extract`
count "dietas" as met by "diem" and "día" by "day": each word is compared as
:func:`functions.quotes.content_keys` cuts it, so "vacation" meets "vacations". A question's
names are looked for in their translations too (:func:`translations`: "Spain" is found as
"España"), by the answerability rule and the sentence choice, and a city by the country it
lies in (:func:`lies_in`, from ``places.txt``: a Boston question over "US Employees").

Measured in docs/benchmarks.md ("How a small model is asked"): on the evaluation set the
quote carries the fact for 42 of 48 questions with it, 39 without; on a held-out set of 24
questions asked across languages, written apart from it, 8 and 7.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from functions.factcheck import TOKEN, fold
from functions.quotes import content_keys

SOURCE = Path(__file__).with_name("glossary.txt")


def _sides(path: Path, separator: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """A word list's lines, comments cut: the words before ``separator`` and after it, as
    written, separated by commas."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0]
        if separator in line:
            left, right = line.split(separator, 1)
            found.append((tuple(w.strip() for w in left.split(",") if w.strip()),
                          tuple(w.strip() for w in right.split(",") if w.strip())))
    return found


@cache
def _meanings() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The glossary's lines: (English words, Spanish words), as written."""
    return _sides(SOURCE, "|")


@cache
def _senses() -> dict[str, frozenset[int]]:
    """Each word's key: the meanings (lines) it is in."""
    found: dict[str, set[int]] = {}
    for number, sides in enumerate(_meanings()):
        for key in content_keys(" ".join(w for side in sides for w in side)):
            found.setdefault(key, set()).add(number)
    return {key: frozenset(lines) for key, lines in found.items()}


def senses(key: str) -> frozenset[int]:
    """The meanings a content key (a word cut as content_keys cuts it) may have."""
    return _senses().get(key, frozenset())


def senses_of(keys: Iterable[str]) -> frozenset[int]:
    """Every meaning the content keys may have."""
    table = _senses()
    return frozenset().union(*(table.get(k, frozenset()) for k in keys))


@cache
def _across() -> dict[str, tuple[str, ...]]:
    """Each word's key: the words of the other language on its lines, as written there."""
    found: dict[str, dict[str, None]] = {}
    for english, spanish in _meanings():
        for side, other in ((english, spanish), (spanish, english)):
            for key in content_keys(" ".join(side)):
                found.setdefault(key, {}).update(dict.fromkeys(other))
    return {key: tuple(words) for key, words in found.items()}


def translations(word: str) -> list[str]:
    """The words the glossary gives ``word`` in the other language, as written there."""
    table = _across()
    return list(dict.fromkeys(w for key in content_keys(word) for w in table.get(key, ())))


PLACES = Path(__file__).with_name("places.txt")


@dataclass(frozen=True)
class Region:
    """What a place lies in (a country), as documents name it: "US Employees" is a title for
    the Boston office's people. A form written in capitals ("US") is looked for as written,
    so that the pronoun "us" is not the country; the others case and accents aside."""

    as_written: re.Pattern[str] | None
    folded: re.Pattern[str] | None
    places: re.Pattern[str] | None = None  # the places places.txt says lie in it (folded)

    def named_in(self, text: str) -> bool:
        return bool((self.as_written and self.as_written.search(text))
                    or (self.folded and self.folded.search(fold(text))))

    def covers(self, text: str) -> bool:
        """The country is named in ``text``, or one of its places is: a question about the
        US is about a policy for the Boston office."""
        return self.named_in(text) or bool(self.places and self.places.search(fold(text)))


def _either(forms: list[str]) -> re.Pattern[str] | None:
    """One pattern for the forms, word by word, with spaces or dots between ("EE. UU.")."""
    alternatives = [r"\W{0,2}".join(map(re.escape, re.findall(r"\w+", f))) for f in forms]
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")(?!\w)") if forms else None


def _key(form: str) -> str:
    """A country's name compared letters only: "EE. UU." and "EEUU" alike."""
    return "".join(re.findall(r"\w+", fold(form)))


@cache
def _countries() -> list[tuple[tuple[str, ...], list[str]]]:
    """places.txt's countries: the names documents give each, and every place of its lines."""
    found: dict[tuple[str, ...], list[str]] = {}
    for places, forms in _sides(PLACES, ">"):
        found.setdefault(forms, []).extend(places)
    return list(found.items())


@cache
def _regions() -> tuple[dict[str, Region], dict[str, Region]]:
    """Each place (folded): the country it lies in; each country's name (:func:`_key`): it."""
    places_in: dict[str, Region] = {}
    named: dict[str, Region] = {}
    for forms, places in _countries():
        region = Region(_either([f for f in forms if f.isupper()]),
                        _either([fold(f) for f in forms if not f.isupper()]),
                        _either([fold(p) for p in places]))
        places_in.update(dict.fromkeys(map(fold, places), region))
        named.update(dict.fromkeys(map(_key, forms), region))
    return places_in, named


def lies_in(name: str) -> Region | None:
    """The region a place lies in, from places.txt; None for a name it does not list."""
    return _regions()[0].get(fold(name))


def country(name: str) -> Region | None:
    """The country ``name`` names ("Estados Unidos", "USA", "EE. UU."), from places.txt."""
    return _regions()[1].get(_key(name))


UNIONS = Path(__file__).with_name("unions.txt")


@cache
def _unions() -> dict[str, Region]:
    """Each country of unions.txt (:func:`_key`): the union it belongs to."""
    found: dict[str, Region] = {}
    for countries, forms in _sides(UNIONS, ">"):
        union = Region(_either([f for f in forms if f.isupper()]),
                       _either([fold(f) for f in forms if not f.isupper()]))
        found.update(dict.fromkeys(map(_key, countries), union))
    return found


def about(name: str) -> Callable[[str], bool] | None:
    """How to tell that a text is about the place ``name`` names: a city's country named in
    it ("US" for Boston), a country named in any form or one of its places ("Boston" for
    "Estados Unidos") or the union it belongs to (unions.txt: "Unión Europea" for Italy);
    None for a name places.txt and unions.txt do not list."""
    city = lies_in(name)
    if city is not None:
        return city.named_in
    named, union = country(name), _unions().get(_key(name))
    if named is not None and union is not None:
        return lambda text: named.covers(text) or union.named_in(text)
    if union is not None:
        return union.named_in
    return named.covers if named is not None else None


def _plain(text: str) -> str:
    """``text`` without accents, one character for one: positions in it are positions in
    ``text``."""
    return "".join(unicodedata.normalize("NFKD", c)[0] for c in text)


@cache
def _joined() -> re.Pattern[str] | None:
    """The places and countries of places.txt written in more than one word ("New York",
    "Estados Unidos", "EE. UU."), any case, any accents, spaces or dots between their words."""
    forms = {fold(f) for places, names in _sides(PLACES, ">") for f in (*places, *names)
             if len(re.findall(r"\w+", f)) > 1}
    alternatives = [r"\W{0,2}".join(map(re.escape, re.findall(r"\w+", f)))
                    for f in sorted(forms, key=len)[::-1]]
    return (re.compile(r"\b(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
            if alternatives else None)


def places_of_words(text: str) -> Iterator[tuple[int, int]]:
    """Where ``text`` names a place or a country of more than one word that places.txt lists:
    one name, not "New" and "York" read apart."""
    pattern = _joined()
    if pattern is not None:
        for m in pattern.finditer(_plain(text)):
            yield m.start(), m.end()


def tokens(text: str) -> list[tuple[str, int, bool]]:
    """``text``'s tokens (functions/factcheck.py ``TOKEN``) as written, in order, each with
    where it starts and whether it is a place or a country of several words, read as one
    ("New York", "EE. UU."); an acronym's plural as the acronym ("PRs": "PR")."""
    joined = list(places_of_words(text))
    found = [(" ".join(text[start:end].split()), start, True) for start, end in joined]
    found += [(_singular(m.group(0)), m.start(), False) for m in TOKEN.finditer(text)
              if not any(start <= m.start() < end for start, end in joined)]
    return sorted(found, key=lambda token: token[1])


def _singular(token: str) -> str:
    """An acronym's plural as the acronym: "PRs" is "PR", "APIs" "API"."""
    return token[:-1] if re.fullmatch(r"[A-Z]{2,}s", token) else token
