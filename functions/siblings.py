"""A sentence that speaks of a sibling of what a question names, and so answers another question.

The sentence that best answers a question (functions/extractive.py ``extract``) may hold the
question's words and the kind of fact it asks for, and still be about something else of the
same kind. Three forms are told by their words alone:

- it names a sibling of the question's code, year, compound or role, and not the one asked: "SEV1"
  for a SEV2 question ("For SEV1, … updates it every 30 minutes"), 2025 for 2024 ("70 cents
  per mile in 2025"), "full-time" for "part-time" ("Full-time employees accrue 18 PTO days").
  Siblings share a shape: a code's letters with other digits ("pg-mad-02" for "pg-mad-01"),
  a year, or a hyphenated compound's second word with an opposite first (:data:`OPPOSED`:
  "part-" and "full-time", not "two-" and "multi-factor"), or a word for people on other
  terms (:data:`ROLES`: "US employees are paid…" for contractors) or in another team
  (:data:`TEAMS`: "Engineers on call receive $250 per week" for support folks);
- it is a list item ("Label: value"), its label of at most :data:`LABEL_WORDS` words and no
  figure, and the label shares no content word with the question, as written or by the
  glossary's meanings: "Matrimonio o registro de pareja de hecho: 15 días naturales." says
  nothing of "permiso de lactancia"; it does of a wedding ("boda", "wedding");
- it names the question's name beside another ("Fenway and Harbor", "Retiro y Prado") and
  then states the kind of fact asked only in clauses that name the other and not it: "The
  two large rooms are Fenway and Harbor; Harbor seats 10" does not say how many fit in
  Fenway, while "Madrid and Boston get 5 days; Boston also gets $300" says Madrid's.

:func:`functions.answerability.answers` then answers "I don't know" with the closest sources.
Measured with ``python -m bench.answer_lab`` and through the API in docs/benchmarks.md ("Siblings
of what a question names").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from functions.extractive import states
from functions.factcheck import WORD, fold
from functions.glossary import senses_of
from functions.quotes import content_keys

_TOKEN = re.compile(r"[\w-]+")  # a code is one with letters and digits: SEV2, pg-mad-01
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_COMPOUND = re.compile(r"\b([^\W\d_]{3,})-([^\W\d_]{3,})\b")  # "part-time"
# A compound's first words that name opposite cases of its second: "part-time" and "full-time"
# are siblings, "two-factor" and "multi-factor" one thing said twice.
OPPOSED = (frozenset({"part", "full"}), frozenset({"short", "long"}), frozenset({"pre", "post"}),
           frozenset({"read", "write"}), frozenset({"high", "low"}))
_CLAUSES = re.compile(r"[;:]|,\s")
_COORDINATED = r",? (?:and|or|y|o|e|u) "  # "Fenway and Harbor", "Retiro y Prado"


# Words for people by the terms they work on, each term in English and Spanish: a sentence
# about employees does not say what contractors get.
ROLES = (("employee", "employees", "empleado", "empleados", "empleada", "empleadas"),
         ("contractor", "contractors", "contratista", "contratistas", "autonomo", "autonomos",
          "autonoma", "autonomas", "freelancer", "freelancers"),
         ("intern", "interns", "becario", "becarios", "becaria", "becarias"))
_ROLE = {word: number for number, words in enumerate(ROLES) for word in words}
# Words for people by the team they work in: what engineers on call get is not what support does.
TEAMS = (("engineer", "engineers", "engineering", "ingeniero", "ingenieros", "ingeniera",
          "ingenieras", "ingenieria"),
         ("support", "soporte"),
         ("sales", "ventas", "comercial", "comerciales"),
         ("finance", "finanzas"),
         ("design", "designer", "designers", "diseno", "disenador", "disenadores", "disenadora"))
_TEAM = {word: number for number, words in enumerate(TEAMS) for word in words}

EMPLOYEES = "role0"  # the terms most people work on: a question naming them names no one apart
# "I'm a new engineer", "soy de soporte": who asks, not whom the answer is about.
_SELF = re.compile(r"\b(?:soy|i'?m|i am|como|as an?)\b((?:\W+\w+){1,3})")


def groups(text: str) -> dict[str, str]:
    """The roles and teams ``text`` names, each by its kind and number in :data:`ROLES` or
    :data:`TEAMS` ("role1" for contractors, "team1" for support), to a word naming it."""
    found = {}
    for word in WORD.findall(fold(text)):
        if word in _ROLE:
            found[f"role{_ROLE[word]}"] = word
        if word in _TEAM:
            found[f"team{_TEAM[word]}"] = word
    return found


def asked_about(question: str) -> dict[str, str]:
    """The roles and teams a question asks about (:func:`groups`), leaving out a team that
    only says who asks ("I'm a new engineer, how do I…?"); a role is kept: what a contractor
    gets is not what an employee does, whoever asks."""
    folded = fold(question)
    own = {word for m in _SELF.finditer(folded) for word in WORD.findall(m.group(1))}
    return {group: word for group, word in groups(folded).items()
            if group.startswith("role") or word not in own}


def _kin(text: str) -> dict[str, dict[str, str]]:
    """``text``'s codes, years and compounds by shape, each folded, to it as written."""
    found: dict[str, dict[str, str]] = {}
    for m in _TOKEN.finditer(text):  # read token by token: linear in the text's length
        code = m.group(0).strip("-_")
        if (len(code) >= 3 and any(c.isdigit() for c in code)
                and any(c.isalpha() for c in code)):
            found.setdefault(re.sub(r"\d+", "#", fold(code)), {})[fold(code)] = code
    for m in _YEAR.finditer(text):
        found.setdefault("year", {})[m.group(0)] = m.group(0)
    for group, word in groups(text).items():  # "role1": kind "role", number "1"
        found.setdefault(group[:4], {})[group[4:]] = word
    for m in _COMPOUND.finditer(text):
        found.setdefault("-" + fold(m.group(2)), {})[fold(m.group(0))] = m.group(0)
    return found


def _apart(shape: str, asked: set[str], there: set[str]) -> bool:
    """Whether ``there`` holds siblings of ``asked`` (neither among the other): any other code
    or year; for a compound, one whose first word is the opposite of the asked one's."""
    if asked & there:
        return False
    if not shape.startswith("-"):
        return True
    return any(frozenset({a.split("-")[0], t.split("-")[0]}) in OPPOSED
               for a in asked for t in there)


def _siblings(question: str, sentence: str) -> list[str]:
    said = _kin(sentence)
    return [written for shape, asked in _kin(question).items()
            if (there := said.get(shape)) and _apart(shape, set(asked), set(there))
            for written in there.values()]


def _beside(names: Iterable[str], sentence: str, kinds: set[str]) -> list[str]:
    folded = fold(sentence)
    for name in names:
        key = re.escape(fold(name))
        pair = re.search(rf"\b(\w+){_COORDINATED}{key}\b|\b{key}{_COORDINATED}(\w+)\b", folded)
        if not pair or len(other := pair.group(1) or pair.group(2)) < 3:
            continue
        stating = [c for c in _CLAUSES.split(folded[pair.end():]) if kinds & states(c)]
        if stating and all(re.search(rf"\b{re.escape(other)}\b", c)
                           and not re.search(rf"\b{key}\b", c) for c in stating):
            return [other]
    return []


# A list item: a label of at most :data:`LABEL_WORDS` words without a figure, a colon, a short
# value ("Matrimonio o registro de pareja de hecho: 15 días naturales.").
_LABEL = re.compile(r"([^:\d]{3,120}):\s*(.{1,60})", re.DOTALL)
LABEL_WORDS = 12


def _labelled(question: str, sentence: str) -> list[str]:
    """A list item's label, when ``sentence`` is one and the label shares no content word with
    ``question``, as written or by the glossary's meanings ("matrimonio" for "wedding"): the
    value is said of the label ("Fallecimiento…: cinco días laborables" does not say how many
    days come with five years at the company)."""
    m = _LABEL.fullmatch(sentence)
    if m is None or len(m.group(1).split()) > LABEL_WORDS:
        return []
    label, wanted = content_keys(m.group(1)), content_keys(question)
    if not label or label & wanted or senses_of(label) & senses_of(wanted):
        return []
    return [m.group(1).strip()]


def instead(question: str, names: Iterable[str], sentence: str,
            kinds: set[str]) -> tuple[str, ...]:
    """What ``sentence`` speaks of in place of what ``question`` names (its ``names``; the
    ``kinds`` of fact it asks for outright, as :func:`functions.extractive.states` names
    them); empty when it speaks of what was asked."""
    return tuple(_siblings(question, sentence) or (_beside(names, sentence, kinds)
                                                   if kinds else [])
                 or _labelled(question, sentence))
