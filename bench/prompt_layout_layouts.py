"""Step 2 of bench/prompt_layout.py: prompt layouts for the bundled model.

The answerable questions with their captured passages (bench/prompt_layout_capture.py), sent
straight to a ``llama-server`` in each layout of :data:`LAYOUTS`, at temperature 0 and 0.7:
each answer judged on whether it carries the question's fact and whether it states a fact no
passage states, with its tokens and seconds (:func:`step_layouts`); and the quote chosen
without the model as a baseline (:func:`quoted`). :class:`Answerer` asks the model and keeps
every answer in :data:`ANSWERS`, which step 3 asks through too.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.answers import carries
from bench.prompt_layout_capture import RESULTS, passages_of
from functions.extractive import extract, no_answer, quoted_answer
from functions.factcheck import check, evidence
from functions.quotes import content_keys, sentences
from shared.chat import Message, reference_message
from shared.knowledge.language import SPANISH, detect
from shared.knowledge.search import Passage
from shared.settings import Settings

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


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    prefix: str = ""  # the start of the answer, written for the model (prefill)


def labelled(passages: Sequence[Passage]) -> str:
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
    return Prompt(_user_turn(question, labelled(passages)))


def layout_c(question: str, passages: Sequence[Passage]) -> Prompt:
    """B with the top passage only."""
    return Prompt(_user_turn(question, labelled(passages[:1])))


def layout_d(question: str, passages: Sequence[Passage]) -> Prompt:
    """B with the instruction (and the question's label) in the question's language."""
    return Prompt(_user_turn(question, labelled(passages),
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
    so that a re-run asks only what it has not asked yet. ``model``: another server's model
    (any OpenAI-compatible one: vLLM, TGI, a llama-server of a larger model), asked by name
    and every time, its answers kept nowhere."""

    def __init__(self, url: str | None, *, model: str | None = None,
                 remember: bool = True) -> None:
        self._http = httpx.Client(base_url=url, timeout=600) if url else None
        self._known: dict[str, dict[str, Any]] = {}
        self._model = model
        self._remember = remember
        if remember and ANSWERS.exists():
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
        if self._model is not None:  # another engine: its model named, nothing llama.cpp's own
            body["model"] = self._model
            del body["cache_prompt"]
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
        if not self._remember:
            return row
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


def quoted(rows: list[dict[str, Any]]) -> dict[str, Any]:
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
                                           **quoted(answerable)}
    return {"best": best, "questions": len(answerable),
            "skipped": [r["id"] for r in rows if r["source"] and not r["passages"]],
            "settings": results}
