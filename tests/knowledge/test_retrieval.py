"""Retrieval quality on the bilingual evaluation set (tests/knowledge/eval), end to end:
the real parsers and chunker, the real embedding model behind the model server, Postgres with
pgvector, hybrid search. Goal (issue 4): recall@5 of at least 0.9."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.knowledge import Knowledge
from functions.model_client import ModelClient
from shared.db import Database, make_pool
from shared.knowledge.search import Passage, search
from shared.knowledge.store import Collection
from shared.settings import Secret
from tests.conftest import Api, fresh_database

EVAL = Path(__file__).parent / "eval"
QUESTIONS: list[dict[str, Any]] = json.loads((EVAL / "questions.json").read_text())


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class Indexed:
    kb: Knowledge
    collection: Collection


@pytest.fixture(scope="module")
def eval_url(pg_url: str) -> str:
    return fresh_database(pg_url)


@pytest.fixture(scope="module")
async def indexed(api: Api, eval_url: str) -> AsyncIterator[Indexed]:
    url = eval_url
    settings = dataclasses.replace(api.settings, database_url=Secret(url))
    db = Database(make_pool(settings))
    model = ModelClient(settings)
    kb = Knowledge(db, model)
    ingestor = kb.ingestor("test:eval")
    collection = await ingestor.collection(f"eval-{uuid.uuid4().hex[:6]}")
    files = [(p.name, p.read_bytes()) for p in sorted((EVAL / "docs").iterdir())
             if p.is_file()]
    outcomes = await ingestor.ingest(collection, files)
    failed = [o for o in outcomes if o.status != "added"]
    assert not failed, failed
    yield Indexed(kb, collection)
    await model.close()
    await db.close()


async def top(indexed: Indexed, question: str, k: int = 5) -> list[Passage]:
    _model, vector = await indexed.kb.query_vector(question, sub="test:eval")
    return await search(indexed.kb.db, text=question, vector=vector,
                        collections=[indexed.collection.id], k=k)


def hit(item: dict[str, Any], passages: list[Passage]) -> bool:
    want = squash(item["answer_contains"])
    return any(p.source == item["source"] and want in squash(p.content) for p in passages)


async def test_recall_at_5_is_at_least_0_9(indexed: Indexed) -> None:
    answerable = [q for q in QUESTIONS if q["source"]]
    results = {q["id"]: hit(q, await top(indexed, q["question"])) for q in answerable}
    recall = sum(results.values()) / len(results)
    by_lang = {lang: sum(results[q["id"]] for q in answerable if q["lang"] == lang)
               / sum(1 for q in answerable if q["lang"] == lang) for lang in ("es", "en")}
    missed = [q["id"] for q in answerable if not results[q["id"]]]
    print(f"recall@5 {recall:.3f} (es {by_lang['es']:.3f}, en {by_lang['en']:.3f}); "
          f"missed: {missed}")
    assert recall >= 0.9, (recall, by_lang, missed)


OFF_TOPIC = ["What was the score of last night's football match?", "Give me a recipe for paella.",
             "Who won the 2018 World Cup?", "Write a poem about the sea.",
             "¿Quién escribió el Quijote?", "¿Cuánto es 17 por 23?"]


async def test_off_topic_questions_find_nothing_relevant_and_answerable_ones_do(
    indexed: Indexed
) -> None:
    """What CHARLA_KB_MAX_DISTANCE separates (docs/benchmarks.md has the distances): every
    answerable question keeps its passages, questions about something else entirely find
    none, so the bot says it does not know. Questions near the documents' topics that they do
    not answer (the set's six with no source) are not told apart by distance with this
    embedding model; they are measured, not asserted."""
    threshold = indexed.kb._max_distance
    best = {q["question"]: min(p.distance for p in await top(indexed, q["question"]))
            for q in QUESTIONS}
    for question in OFF_TOPIC:
        best[question] = min(p.distance for p in await top(indexed, question))
    answerable = [q["question"] for q in QUESTIONS if q["source"]]
    near_topic = [q["question"] for q in QUESTIONS if not q["source"]]
    kept = sum(best[q] <= threshold for q in answerable) / len(answerable)
    print(f"answerable kept {kept:.3f}; off-topic refused "
          f"{sum(best[q] > threshold for q in OFF_TOPIC)}/{len(OFF_TOPIC)}; near-topic refused "
          f"{sum(best[q] > threshold for q in near_topic)}/{len(near_topic)}; distances: "
          + ", ".join(f"{best[q]:.3f}" for q in near_topic + OFF_TOPIC))
    assert kept >= 0.95
    assert all(best[q] > threshold for q in OFF_TOPIC), {q: best[q] for q in OFF_TOPIC}
