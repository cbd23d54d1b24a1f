"""Finding the passages that answer a question: vectors and words, fused by rank.

Two searches over the chunks of the readable collections only: nearest vectors (HNSW, cosine)
and full-text (Postgres, Spanish and English stemming), each keeping its best ``candidates``
(20: more made the vector side's p99 three times longer for no recall the tests could see);
reciprocal rank fusion merges them (a chunk's score is the sum of 1/(60 + its rank) in each
list), so a passage found by both ranks first and one found by either still counts. The
vector search filters by collection inside the index scan (pgvector's iterative scans), so a
small collection among large ones still gets its full top-k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from shared.db import Database
from shared.knowledge.store import vector_literal

RRF_K = 60


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
       c.embedding <=> %(q)s::vector AS distance, f.score
FROM fused f JOIN chunks c ON c.id = f.id JOIN documents d ON d.id = c.document_id
JOIN collections col ON col.id = c.collection_id
ORDER BY f.score DESC, distance LIMIT %(k_out)s
"""


async def search(db: Database, *, text: str, vector: np.ndarray, collections: Sequence[int],
                 k: int = 5, candidates: int = 20, ef_search: int = 100) -> list[Passage]:
    """The ``k`` best passages for a question in ``collections`` (none given: none found)."""
    if not collections:
        return []
    async with db.connection() as conn, conn.transaction():
        # For this transaction only (is_local), not for the pooled connection; one round trip.
        await conn.execute("SELECT set_config('hnsw.ef_search', %s, true),"
                           " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                           (str(int(ef_search)),))
        cur = await conn.execute(_SQL, {"q": vector_literal(vector), "c": list(collections),
                                        "n": candidates, "text": text, "k": RRF_K,
                                        "k_out": k})
        rows = await cur.fetchall()
    return [Passage(cast(int, r["id"]), cast(int, r["document_id"]), str(r["collection"]),
                    str(r["source"]),
                    cast(str | None, r["title"]), cast(str | None, r["heading"]),
                    cast(int | None, r["page"]), str(r["content"]),
                    float(cast(float, r["distance"])), float(cast(float, r["score"])))
            for r in rows]
