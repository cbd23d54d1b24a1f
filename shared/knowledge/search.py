"""Finding the passages that answer a question: vectors and words, fused by rank.

Two searches over the chunks of the readable collections only: nearest vectors (HNSW, cosine)
and full-text (Postgres, Spanish and English stemming), each keeping its best ``candidates``
(20: more made the vector side's p99 three times longer for no recall the tests could see);
reciprocal rank fusion merges them (a chunk's score is the sum of 1/(60 + its rank) in each
list), so a passage found by both ranks first and one found by either still counts. The
vector search filters by collection inside the index scan (pgvector's iterative scans), so a
small collection among large ones still gets its full top-k.

The embeddings read both languages but rank a question's own language first: a Spanish
question over an English handbook found the passage with its answer for 16 of 24 questions
of a held-out set. So where the candidates hold passages in the other language than the
question's (as the chunks' text-search language and :func:`detect` tell), up to half of the
``k`` seats (:data:`OTHER_LANGUAGE`) go to the best of them, in place of the lowest of the
question's own: 20 of 24 on that set, 23 of 24 on a second one (from 19), 48 of 48 on the
evaluation set as before (docs/benchmarks.md, "Answers that say what the sources say").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from shared.db import Database
from shared.knowledge.language import SIMPLE, detect
from shared.knowledge.store import vector_literal

RRF_K = 60
OTHER_LANGUAGE = 2


def _across_languages(rows: list[dict[str, Any]], k: int, asked_in: str,
                      other: int) -> list[dict[str, Any]]:
    """The ``k`` best rows, at least ``other`` of them (and at most half) in the other
    language than the question's where the candidates hold any."""
    chosen = rows[:k]
    if asked_in == SIMPLE or other <= 0:
        return chosen
    foreign = [r for r in rows[k:] if r["language"] not in (asked_in, SIMPLE)]
    wanted = (min(other, k // 2)
              - sum(r["language"] not in (asked_in, SIMPLE) for r in chosen))
    if wanted <= 0 or not foreign:
        return chosen
    own = [r["id"] for r in chosen if r["language"] in (asked_in, SIMPLE)]
    add = [r["id"] for r in foreign[:min(wanted, len(own))]]
    seated = {r["id"] for r in chosen} - set(own[len(own) - len(add):]) | set(add)
    return [r for r in rows if r["id"] in seated]


@dataclass(frozen=True)
class Passage:
    """A chunk found for a question, with what a citation needs."""

    chunk_id: int
    document_id: int
    collection: str
    source: str
    title: str | None
    heading: str | None
    page: int | None
    content: str
    distance: float  # cosine distance of its vector to the question's (1.0: unrelated)
    score: float  # the fused rank score

    @property
    def citation(self) -> str:
        """"policy.md › Vacation, p. 3": where it came from, short."""
        where = self.source.rsplit("/", 1)[-1]
        if self.heading:
            where += f" › {self.heading}"
        if self.page is not None:
            where += f", p. {self.page}"
        return where


_SQL = """
WITH v AS MATERIALIZED (
    SELECT id, embedding <=> %(q)s::vector AS distance FROM chunks
    WHERE collection_id = ANY(%(c)s) ORDER BY embedding <=> %(q)s::vector LIMIT %(n)s
), vr AS (
    -- "+ 0": relaxed_order returns rows only nearly sorted, and without it the planner takes
    -- the CTE as sorted already and ranks them in the order they came.
    SELECT id, distance, row_number() OVER (ORDER BY distance + 0) AS r FROM v
), t AS (
    SELECT id, row_number() OVER (ORDER BY ts_rank_cd(tsv, query) DESC, id) AS r
    FROM chunks, (SELECT websearch_to_tsquery('english', %(text)s)
                         || websearch_to_tsquery('spanish', %(text)s)
                         || websearch_to_tsquery('simple', %(text)s) AS query) q
    WHERE collection_id = ANY(%(c)s) AND tsv @@ query
    ORDER BY ts_rank_cd(tsv, query) DESC, id LIMIT %(n)s
), fused AS (
    SELECT coalesce(vr.id, t.id) AS id,
           coalesce(1.0 / (%(k)s + vr.r), 0) + coalesce(1.0 / (%(k)s + t.r), 0) AS score
    FROM vr FULL JOIN t ON t.id = vr.id
)
SELECT c.id, c.document_id, col.name AS collection, d.source, d.title, c.heading, c.page, c.content,
       c.embedding <=> %(q)s::vector AS distance, f.score, c.language::text AS language
FROM fused f JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id
JOIN collections col ON col.id = c.collection_id
ORDER BY f.score DESC, distance
"""


async def search(db: Database, *, text: str, vector: np.ndarray, collections: Sequence[int],
                 k: int = 5, candidates: int = 20, ef_search: int = 100,
                 other_language: int = OTHER_LANGUAGE) -> list[Passage]:
    """The ``k`` best passages for a question in ``collections`` (none given: none found)."""
    if not collections:
        return []
    async with db.connection() as conn, conn.transaction():
        # For this transaction only (is_local), not for the pooled connection; one round trip.
        await conn.execute("SELECT set_config('hnsw.ef_search', %s, true),"
                           " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                           (str(int(ef_search)),))
        cur = await conn.execute(_SQL, {"q": vector_literal(vector), "c": list(collections),
                                        "n": candidates, "text": text, "k": RRF_K})
        rows = _across_languages(await cur.fetchall(), k, detect(text), other_language)
    return [Passage(cast(int, r["id"]), cast(int, r["document_id"]), str(r["collection"]),
                    str(r["source"]),
                    cast(str | None, r["title"]), cast(str | None, r["heading"]),
                    cast(int | None, r["page"]), str(r["content"]),
                    float(cast(float, r["distance"])), float(cast(float, r["score"])))
            for r in rows]
