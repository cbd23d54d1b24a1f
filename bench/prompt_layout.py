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

Each step is a module of its own: bench/prompt_layout_capture.py, bench/prompt_layout_layouts.py
and bench/prompt_layout_answerability.py; this one runs them and reports.

``python -m bench.run prompt_layout`` runs the three afresh (the stack for step 1, a
llama-server for steps 2 and 3). ``python -m bench.prompt_layout --cached`` reuses the
captured passages and every answer already in the JSONL file (asking the model only what is
missing), and writes ``bench/results/prompt_layout.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import procs
from bench.answers import EVAL, refused
from bench.prompt_layout_answerability import step_answerability
from bench.prompt_layout_capture import RESULTS, capture, passages_file
from bench.prompt_layout_layouts import ANSWERS, DESCRIBED, Answerer, quoted, step_layouts


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys, database: Any, *,
        steps: Iterable[str] = ("1", "2", "3"), cached: bool = False,
        questions: Path = EVAL / "questions.json", judge_url: str | None = None,
        judge_model: str | None = None) -> None:
    """The steps named; ``cached``: the passages captured before (step 1 only if there are
    none) and the answers already written are reused. ``questions``: another set than the
    evaluation set's (its passages captured to a file of their own). ``judge_url``: the
    OpenAI-compatible server whose model (``judge_model``) step 3's answer judge asks, in
    place of the bundled one."""
    print("== prompt layout and answerability: the evaluation set, the bundled model",
          flush=True)
    steps = set(steps)
    started = time.perf_counter()
    captured = passages_file(questions)
    if "1" in steps and not (cached and captured.exists()):
        rows = capture(logdir, keys, database, questions)
    else:
        rows = json.loads(captured.read_text())
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
                judge = (Answerer(judge_url, model=judge_model, remember=False)
                         if judge_url else None)
                if judge is not None:
                    stack.callback(judge.close)
                result["answerability"] = step_answerability(answerer, rows, judge=judge)
                result["answerability"]["judge"] = (
                    f"{judge_model or 'the model'} at {judge_url}" if judge_url
                    else "the bundled model")
    if "q" in steps:  # the quote alone, no model: how often the sentence chosen carries it
        result["quote"] = quoted([r for r in rows if r["source"] and r["passages"]])
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
    if answerable.get("judge_s_p50") is not None:
        lines += [f"The answer judge ({answerable.get('judge', 'the bundled model')}): p50 "
                  f"{answerable['judge_s_p50'] * 1000:.0f} ms, p95 "
                  f"{answerable['judge_s_p95'] * 1000:.0f} ms per question."]
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
    parser.add_argument("--questions", type=Path, default=EVAL / "questions.json",
                        help="another question set (as the evaluation set's questions.json)")
    parser.add_argument("--judge-url", help="step 3's answer judge asks this OpenAI-"
                        "compatible server (its root, e.g. http://gpu-host:8080) instead of "
                        "the bundled model")
    parser.add_argument("--judge-model", help="the model name to send --judge-url")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    run(out, procs.scratch(), procs.Keys(), procs.database, steps=args.steps.split(","),
        cached=args.cached, questions=args.questions.resolve(), judge_url=args.judge_url,
        judge_model=args.judge_model)
    result = out["prompt_layout"]
    name = ("prompt_layout" if args.questions.resolve() == EVAL / "questions.json"
            else f"prompt_layout-{args.questions.stem}")
    written = RESULTS / f"{name}.json"
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
    (RESULTS / f"{name}.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main(sys.argv[1:])
