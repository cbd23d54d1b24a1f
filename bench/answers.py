"""Do the answers say what the sources say? The evaluation set asked through the API and Slack.

The 16 documents of ``tests/knowledge/eval`` are uploaded into one collection granted to one
API client, and each of its questions is asked through ``POST /v1/chat/completions`` (whole
answers, the bundled model, temperature 0), as a program would ask. A recording proxy between
the API and the model server keeps what the model wrote, so each question gives, side by side
in one run, the answer as it was before the checks (the model's text, which the API showed
until issue 21) and the answer as the API shows it now. For each:

- answerable questions: does it carry the question's ``fact`` (by value for numbers, so "6"
  carries "seis"; months and weekdays in either language; otherwise the fact's words, case and
  accents aside)?
- every question: does it state a fact that none of its cited passages states (the fact
  check of functions/factcheck.py, run here on both against the passages read back through
  ``GET /v1/passages/{id}``)?
- near-topic and off-topic questions (``source: null``): was it refused ("I don't know")?
- the check's own time per answer (the check and, when it fails, the quote), p50 and p95.

Then the same questions through the Slack path, as a team's bot gets them: a signed
``app_mention`` event to the functions app, the worker, the fake Slack's message once whole
(its list of sources set aside), judged the same way and compared with the API's text. The
API is sent the bots' system prompt and the worker the API's answer length, so that both doors
ask the model the same thing: one pipeline should then show the same text.

``python -m bench.run answers`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import secrets
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import bots, procs
from bench.bots import FakeSlackServer
from functions.factcheck import calendar, fold, number_values, numbers
from shared.settings import Settings

EVAL = Path(__file__).resolve().parents[1] / "tests" / "knowledge" / "eval"
COLLECTION = "eval"
CLIENT = "bench-answers"
MAX_TOKENS = 128
REFUSALS = ("i don't know", "i do not know", "no lo se", "no se")
SYSTEM_PROMPT = Settings().system_prompt
SLACK_PRINCIPAL = "slack:T0A1B2C3D"  # the team of the recorded event bench/bots.py sends
# Where a bot's answer ends and its list of sources begins (functions/messaging.py).
_SOURCES = re.compile(r"\n\n(?:\*{1,2})?Sources:")


def carries(answer: str, fact: str) -> bool:
    """Whether ``answer`` states ``fact``: its words, case and accents aside, or else each of
    its numbers by value (so "6" carries "seis" and "1500" carries "1,500"), its months and
    weekdays in either language."""
    if fold(fact) in fold(answer):
        return True
    named = calendar(fact)
    if named:  # "lunes" said as "Monday"
        return named <= calendar(answer) and numbers(fact) <= numbers(answer)
    wanted = [number_values(n) for n in re.findall(r"\d+(?:[.,]\d+)*", fact)]
    wanted += [{n} for n in numbers(re.sub(r"\d+(?:[.,]\d+)*", " ", fact))]
    stated = numbers(answer)
    return bool(wanted) and all(values & stated for values in wanted)


def refused(answer: str) -> bool:
    return any(r in fold(answer) for r in REFUSALS)


def prepare(database_url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The evaluation collection made and granted in ``database_url``; the API's JWT secret,
    and the headers of its client asking and uploading."""
    from functions.api.auth import client_signer

    secret = secrets.token_urlsafe(48)
    signer = client_signer(Settings.from_env({"CHARLA_API_JWT_SECRET": secret}))
    asker = {"Authorization": "Bearer " + signer.sign(CLIENT, ttl_s=7200)}
    writer = {"Authorization": "Bearer " + signer.sign(CLIENT, ttl_s=7200,
                                                        scopes=("documents",))}
    asyncio.run(_setup(database_url))
    return secret, asker, writer


def upload(http: httpx.Client, writer: dict[str, str]) -> None:
    """The evaluation set's documents, through the API."""
    for doc in sorted((EVAL / "docs").iterdir()):
        http.post(f"/v1/documents?collection={COLLECTION}&name={doc.name}",
                  content=doc.read_bytes(), headers=writer).raise_for_status()


async def _setup(database_url: str) -> None:
    from shared.db import Database, make_pool
    from shared.knowledge.store import KnowledgeStore

    settings = Settings.from_env({"DATABASE_URL": database_url})
    db = Database(make_pool(settings))
    try:
        store = KnowledgeStore(db)
        await store.ensure_collection(COLLECTION, model=settings.embedding_model_name,
                                      dimensions=384)
        await store.grant(COLLECTION, f"api:{CLIENT}", write=True)
        await store.grant(COLLECTION, SLACK_PRINCIPAL)
    finally:
        await db.close()


def _judged(question: dict[str, Any], answer: str, passages: list[Any]) -> dict[str, Any]:
    from functions.factcheck import check, evidence

    verdict = check(answer, [t for p in passages for t in evidence(p)]) if passages else None
    return {"answer": answer,
            "carries": carries(answer, question["fact"]) if question["source"] else None,
            "refused": refused(answer),
            "unsupported": list(verdict.unsupported) if verdict else []}


def _check_ms(question: str, answer: str, passages: list[Any]) -> float:
    """The checks' own time on one whole answer: its facts, its copy of its passage when it
    was primed (functions/copy_check.py; the sentence it was started from is chosen before
    the model is asked, so that is not counted), and the quote when one fails."""
    from functions.copy_check import CopyGate
    from functions.extractive import extract, no_answer, quoted_answer
    from functions.factcheck import check, evidence
    from functions.layout import lead

    found = extract(question, passages)
    start = lead(found)
    started = time.perf_counter()
    verdict = check(answer, [t for p in passages for t in evidence(p)])
    copied = None
    if found is not None and start:
        copied = CopyGate(found.sentence, found.passage.content, start).feed(answer, whole=True)
    if not verdict.supported or copied is not None:  # the sentence chosen before is quoted
        _ = quoted_answer(question, found) if found else no_answer(question, passages)
    return (time.perf_counter() - started) * 1000


def _ended(model: str, shown: str, replaced: bool) -> str:
    """How the API ended an answer: as the model wrote it, cut (its start kept: a loop's
    first turn, or a primed answer's sentences copied from its passage), or replaced."""
    if replaced:
        return "replaced"
    if shown.strip() == model.strip():
        return "as written"
    return "cut" if model.strip().startswith(shown.strip()) else "other"


async def _ask_slack(api: str, secret: str, slack: FakeSlackServer, channel: str,
                     question: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await bots.ask(http, api, secret, slack.fake, timeout_s=600, question=question,
                       channel=channel)


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys, database: Any, *,
        questions_file: Path = EVAL / "questions.json", slack_path: bool = True) -> None:
    """Each question of ``questions_file`` (the evaluation set's, or another over the same
    documents: bench/heldout-2.json) through the API and, with ``slack_path``, Slack."""
    print(f"== answers: {_named(questions_file)} through the API, before and after the checks",
          flush=True)
    from shared.knowledge.search import Passage

    pg, database_url = database(logdir, "pgdata-answers")
    secret, asker, writer = prepare(database_url)
    questions = json.loads(questions_file.read_text())
    raw_log = logdir / "model-answers.jsonl"
    rows: list[dict[str, Any]] = []
    slack_secret = "bench-signing-" + secrets.token_hex(12)
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(procs.gateway(keys, logdir, home="gateway-answers"))
            port = procs.free_port()
            stack.enter_context(procs.running(
                [sys.executable, "-m", "bench.recording_proxy", str(port), gw, str(raw_log)],
                f"http://127.0.0.1:{port}/proxy-health", log=logdir / "recording-proxy.log"))
            slack = FakeSlackServer(procs.free_port())
            stack.callback(slack.stop)
            bots_env = {"SLACK_SIGNING_SECRET": slack_secret,
                        "SLACK_BOT_TOKEN": slack.fake.token, "SLACK_API_URL": slack.url,
                        "CHARLA_BOT_MAX_TOKENS": str(MAX_TOKENS)}  # as long as the API's
            api = stack.enter_context(procs.functions_app(
                keys, f"http://127.0.0.1:{port}", database_url, secret, logdir, **bots_env))
            stack.enter_context(procs.worker(keys, f"http://127.0.0.1:{port}", database_url,
                                             logdir, **bots_env))
            with httpx.Client(base_url=api, timeout=600) as http:
                upload(http, writer)
                for q in questions:
                    recorded = len(raw_log.read_text().splitlines()) if raw_log.exists() else 0
                    started = time.perf_counter()
                    response = http.post("/v1/chat/completions", headers=asker, json={
                        # The bots' system prompt: the same prompt through both doors.
                        "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                     {"role": "user", "content": q["question"]}],
                        "max_tokens": MAX_TOKENS, "temperature": 0})
                    wall = time.perf_counter() - started
                    response.raise_for_status()
                    body = response.json()
                    shown = body["choices"][0]["message"]["content"] or ""
                    lines = raw_log.read_text().splitlines() if raw_log.exists() else []
                    # The model's text; none when the API answered without asking it.
                    asked = len(lines) > recorded
                    model = json.loads(lines[-1])["answer"] if asked else shown
                    passages = [Passage(c["chunk_id"], c["document_id"], c["collection"],
                                        c["source"], c["title"], c["section"], c["page"],
                                        http.get(c["url"], headers=asker).json()["text"],
                                        0.0, 0.0)
                                for c in body.get("citations") or []]
                    rows.append({
                        "id": q["id"], "lang": q["lang"], "answerable": bool(q["source"]),
                        "near": q.get("near"), "wall_s": wall,
                        "cited": [p.source for p in passages],
                        "replaced": bool(body.get("fact_check")),
                        "ended": _ended(model, shown, bool(body.get("fact_check")))
                        if asked else "not asked",
                        "before": _judged(q, model, passages),
                        "after": _judged(q, shown, passages),
                        "check_ms": _check_ms(q["question"], model, passages) if passages
                        else None,
                        "_passages": passages})
                    print(f"   {q['id']} {wall:.1f} s", flush=True)
                # The same questions through the Slack path: a signed event → the worker →
                # the fake Slack's message, whole (the sources listed under it set aside).
                for q, row in zip(questions, rows, strict=True):
                    if slack_path:
                        row["slack"] = _slack_judged(api, slack_secret, slack, q,
                                                     row["_passages"])
                        print(f"   slack {q['id']}", flush=True)
    finally:
        pg.stop()
    for row in rows:
        del row["_passages"]
    out["answers"] = {"rows": rows, "max_tokens": MAX_TOKENS,
                      "questions": _named(questions_file)}


def _named(questions_file: Path) -> str:
    if questions_file.resolve() == (EVAL / "questions.json").resolve():
        return "the evaluation set"
    return "the questions of " + questions_file.resolve().relative_to(EVAL.parents[2]).as_posix()


def _slack_judged(api: str, secret: str, slack: FakeSlackServer, q: dict[str, Any],
                  passages: list[Any]) -> dict[str, Any]:
    """``q`` asked in a channel of its own through the Slack path, its answer judged."""
    channel = f"C{secrets.token_hex(5).upper()}"
    asyncio.run(_ask_slack(api, secret, slack, channel, q["question"]))
    text = _SOURCES.split(bots.answer_in(slack.fake, channel))[0]
    return _judged(q, html.unescape(text), passages)


def _share(rows: list[dict[str, Any]], when: str, key: str) -> str:
    if not rows:
        return "-"
    n = sum(bool(r[when][key]) for r in rows)
    return f"{n}/{len(rows)} ({100 * n / len(rows):.0f}%)"


def report_lines(result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    named = result.get("questions", "the evaluation set")
    lines = [f"{named[0].upper()}{named[1:]} through the API "
             "(bundled model, temperature 0, at most "
             f"{result['max_tokens']} tokens), each answer as the model wrote it (before) and "
             "as the API shows it (after):", "",
             "| questions | n | carries the fact: before | after | states a fact no passage "
             "states: before | after | refused: before | after |",
             "|---|---|---|---|---|---|---|---|"]
    groups = [("answerable, es", [r for r in rows if r["answerable"] and r["lang"] == "es"]),
              ("answerable, en", [r for r in rows if r["answerable"] and r["lang"] == "en"]),
              ("near-topic", [r for r in rows if not r["answerable"] and r["near"]]),
              ("off-topic", [r for r in rows if not r["answerable"] and not r["near"]])]
    for name, group in groups:
        answerable = bool(group and group[0]["answerable"])
        lines.append(
            f"| {name} | {len(group)} | "
            f"{_share(group, 'before', 'carries') if answerable else '-'} | "
            f"{_share(group, 'after', 'carries') if answerable else '-'} | "
            f"{_share(group, 'before', 'unsupported')} | {_share(group, 'after', 'unsupported')}"
            f" | {_share(group, 'before', 'refused')} | {_share(group, 'after', 'refused')} |")
    if all("slack" in r for r in rows):
        lines += ["", "The same questions through the Slack path (a signed event, the worker, the "
                  "fake Slack's message; the sources listed under it set aside):", "",
                  "| questions | n | carries the fact | states a fact no passage states | "
                  "refused | the same text as the API |", "|---|---|---|---|---|---|"]
        for name, group in groups:
            answerable = bool(group and group[0]["answerable"])
            same = sum(r["slack"]["answer"].strip() == r["after"]["answer"].strip()
                       for r in group)
            lines.append(
                f"| {name} | {len(group)} | "
                f"{_share(group, 'slack', 'carries') if answerable else '-'} | "
                f"{_share(group, 'slack', 'unsupported')} | {_share(group, 'slack', 'refused')}"
                f" | {same}/{len(group)} |")
    if all("ended" in r for r in rows):
        lines += ["", "How the API ended each answer: "
                  + ", ".join(f"{how} {sum(r['ended'] == how for r in rows)}"
                              for how in ("as written", "cut", "replaced", "other", "not asked"))
                  + " (the model not asked: the documents do not answer the question)."]
    times = sorted(r["check_ms"] for r in rows if r["check_ms"] is not None)
    if times:
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        lines += ["", f"The check's own time per answer (and the quote's, when it fails): "
                  f"p50 {statistics.median(times):.2f} ms, p95 {p95:.2f} ms ({len(times)} "
                  "answers with citations)."]
    return lines


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.answers [--questions FILE] [--api-only]``: writes
    bench/results/answers[-FILE's stem].{json,md}."""
    parser = argparse.ArgumentParser(prog="python -m bench.answers")
    parser.add_argument("--questions", type=Path, default=EVAL / "questions.json",
                        help="another question set over the evaluation set's documents")
    parser.add_argument("--api-only", action="store_true", help="not through Slack too")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    run(out, procs.scratch(), procs.Keys(), procs.database,
        questions_file=args.questions.resolve(), slack_path=not args.api_only)
    name = ("answers" if args.questions.resolve() == (EVAL / "questions.json").resolve()
            else f"answers-{args.questions.stem}")
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(out["answers"], indent=1,
                                                     ensure_ascii=False))
    text = "\n".join(report_lines(out["answers"]))
    (results / f"{name}.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main(sys.argv[1:])
