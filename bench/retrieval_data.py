"""Synthetic chunks for the retrieval benchmark: vectors shaped like text embeddings, short
bilingual texts, queries near stored chunks, the exact top-k found by brute force, and the
loading of it all into the real schema.

Real embeddings are neither uniform noise nor one blob: they sit in topics (clusters of
different tightness) and use far fewer directions than their 384 coordinates. So every
vector here is a topic centre plus noise whose variance decays over the coordinates (a power
law; cosine search does not care which axes, so no rotation is needed), normalised to unit
length. Documents keep to one topic, and a collection (a team's documents) mostly to its own
topics, so a collection filter behaves as it would for a real team.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

DIM = 384
COLLECTIONS = 10
PER_COLLECTION = 20_000
CHUNKS_PER_DOCUMENT = 20
TOPICS = 300
TOPICS_PER_COLLECTION = TOPICS // COLLECTIONS
OWN_TOPIC_SHARE = 0.7  # of a collection's documents; the rest are on any topic
QUERIES = 500
K = 10
SPECTRUM_DECAY = 0.4  # noise variance of coordinate i ∝ (i+1)^-0.8: about 60 effective dims
SPREAD = (0.5, 1.2)  # noise norm against the unit-norm topic centre, per topic
QUERY_NOISE = 0.5  # a query is a paraphrase: its source chunk plus half its topic's noise

def _words(text: str) -> list[str]:
    return text.split()


WORDS = {
    "english": _words(
        "vacation leave salary payroll expense receipt invoice budget contract vendor "
        "laptop server database backup restore password account badge office parking "
        "meeting calendar deadline project release deploy rollback incident outage alert "
        "monitoring dashboard latency capacity storage network firewall certificate "
        "kubernetes cluster container image registry pipeline build test review merge "
        "branch onboarding training mentor interview hiring promotion appraisal feedback "
        "insurance health dental pension bonus overtime shift holiday travel flight hotel "
        "allowance reimbursement policy compliance audit privacy security encryption key "
        "token customer ticket support escalation refund warranty shipping order stock "
        "warehouse supplier quality report quarterly revenue forecast marketing campaign "
        "website newsletter design brand legal lawsuit trademark license printer kitchen"
    ),
    "spanish": _words(
        "vacaciones permiso salario nómina gasto recibo factura presupuesto contrato "
        "proveedor portátil servidor base datos copia seguridad contraseña cuenta tarjeta "
        "oficina aparcamiento reunión calendario plazo proyecto versión despliegue "
        "incidencia caída alerta monitorización panel latencia capacidad almacenamiento "
        "red cortafuegos certificado clúster contenedor imagen registro compilación prueba "
        "revisión rama incorporación formación mentor entrevista contratación ascenso "
        "comentarios seguro salud dental pensión prima horas extra turno festivo viaje "
        "vuelo hotel dieta reembolso política cumplimiento auditoría privacidad cifrado "
        "clave cliente ticket soporte reclamación devolución garantía envío pedido "
        "almacén existencias calidad informe trimestral ingresos previsión campaña "
        "web boletín diseño marca jurídico demanda licencia impresora cocina comedor"
    ),
}
FILLER = {
    "english": _words("the of and to in for with on is are must be by when after before"),
    "spanish": _words("el la de y en para con por es son debe ser cuando después antes los"),
}
TOPIC_WORDS = 8


@dataclass
class Corpus:
    """Row ``i`` is the chunk with id ``i + 1``, in collection ``collection[i] + 1``."""

    vectors: np.ndarray  # (n, DIM) float32, unit rows
    collection: np.ndarray  # (n,) 0-based
    document: np.ndarray  # (n,) 0-based, documents numbered in collection order
    topic: np.ndarray  # (n,)
    texts: list[str]
    topic_spread: np.ndarray  # per topic: its noise norm against the unit centre
    topic_language: list[str]  # per topic: 'english' or 'spanish'
    topic_words: list[list[str]]


@dataclass
class Queries:
    vectors: np.ndarray  # (QUERIES, DIM) float32
    source: np.ndarray  # the row each was made from
    own: np.ndarray  # its source's collection (0-based): the usual filter
    other: np.ndarray  # another collection, whose chunks rarely share the query's topic
    texts: list[str]  # a few words of its topic, for full-text search


def _spectrum() -> np.ndarray:
    scale = (np.arange(DIM) + 1.0) ** -SPECTRUM_DECAY
    result: np.ndarray = (scale / np.linalg.norm(scale)).astype(np.float32)
    return result


def _normalise(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return result


def corpus(seed: int = 7) -> Corpus:
    """``COLLECTIONS`` times ``PER_COLLECTION`` chunks, generated one collection at a time."""
    rng = np.random.default_rng(seed)
    spectrum = _spectrum()
    centres = _normalise(rng.standard_normal((TOPICS, DIM), dtype=np.float32) * spectrum)
    spread = rng.uniform(*SPREAD, TOPICS).astype(np.float32)
    languages = ["english" if rng.random() < 0.5 else "spanish" for _ in range(TOPICS)]
    words = [list(rng.choice(WORDS[lang], TOPIC_WORDS, replace=False)) for lang in languages]
    docs_per_collection = PER_COLLECTION // CHUNKS_PER_DOCUMENT
    n = COLLECTIONS * PER_COLLECTION
    vectors = np.empty((n, DIM), dtype=np.float32)
    topic = np.empty(n, dtype=np.int64)
    for c in range(COLLECTIONS):
        own = rng.integers(c * TOPICS_PER_COLLECTION, (c + 1) * TOPICS_PER_COLLECTION,
                           docs_per_collection)
        doc_topic = np.where(rng.random(docs_per_collection) < OWN_TOPIC_SHARE, own,
                             rng.integers(0, TOPICS, docs_per_collection))
        rows = slice(c * PER_COLLECTION, (c + 1) * PER_COLLECTION)
        topic[rows] = np.repeat(doc_topic, CHUNKS_PER_DOCUMENT)
        noise = rng.standard_normal((PER_COLLECTION, DIM), dtype=np.float32) * spectrum
        vectors[rows] = _normalise(centres[topic[rows]]
                                   + spread[topic[rows], None] * noise)
    texts = _texts(rng, topic, languages, words)
    return Corpus(vectors=vectors, collection=np.arange(n) // PER_COLLECTION,
                  document=np.arange(n) // CHUNKS_PER_DOCUMENT, topic=topic, texts=texts,
                  topic_spread=spread, topic_language=languages, topic_words=words)


def _texts(rng: np.random.Generator, topic: np.ndarray, languages: list[str],
           words: list[list[str]]) -> list[str]:
    """Ten to sixteen words a chunk: half its topic's, a quarter of its language at large,
    a quarter fillers (stop words, which full-text search must skip)."""
    n, longest = len(topic), 16
    length = rng.integers(10, longest + 1, n)
    kind = rng.random((n, longest))
    pick = rng.random((n, longest))
    texts = []
    for i, t in enumerate(topic):
        lang, own = languages[t], words[t]
        pools = (own, WORDS[lang], FILLER[lang])
        row = []
        for j in range(length[i]):
            pool = pools[0 if kind[i, j] < 0.5 else 1 if kind[i, j] < 0.75 else 2]
            row.append(pool[int(pick[i, j] * len(pool))])
        texts.append(" ".join(row))
    return texts


def queries(data: Corpus, seed: int = 11) -> Queries:
    """Paraphrase-like queries: a stored chunk moved by noise of its own topic's shape."""
    rng = np.random.default_rng(seed)
    source = rng.choice(len(data.vectors), QUERIES, replace=False)
    noise = rng.standard_normal((QUERIES, DIM), dtype=np.float32) * _spectrum()
    spread = data.topic_spread[data.topic[source]]
    vectors = _normalise(data.vectors[source] + QUERY_NOISE * spread[:, None] * noise)
    own = data.collection[source]
    other = (own + rng.integers(1, COLLECTIONS, QUERIES)) % COLLECTIONS
    texts = []
    for row in source:
        words = data.topic_words[int(data.topic[row])]
        texts.append(" ".join(rng.choice(words, int(rng.integers(2, 4)), replace=False)))
    return Queries(vectors=vectors, source=source, own=own, other=other, texts=texts)


def exact_top_k(data: Corpus, q: np.ndarray, only: np.ndarray | None = None,
                k: int = K) -> np.ndarray:
    """Chunk ids (row + 1) of the ``k`` nearest by cosine, in float64; ``only[i]`` restricts
    query ``i`` to one collection. Rows are unit length, so the dot product is the cosine."""
    result = np.empty((len(q), k), dtype=np.int64)
    q64 = q.astype(np.float64)
    if only is None:
        # Block by collection and keep each block's best k: a full similarity matrix of
        # every query against every chunk would take 800 MB.
        ids, sims = [], []
        for start in range(0, len(data.vectors), PER_COLLECTION):
            block = q64 @ data.vectors[start:start + PER_COLLECTION].astype(np.float64).T
            top = np.argpartition(-block, k, axis=1)[:, :k]
            ids.append(top + start + 1)
            sims.append(np.take_along_axis(block, top, axis=1))
        all_ids, all_sims = np.hstack(ids), np.hstack(sims)
        for i in range(len(q)):
            result[i] = all_ids[i, _best(all_sims[i], k)]
        return result
    for c in range(COLLECTIONS):
        picked = np.flatnonzero(only == c)
        first = c * PER_COLLECTION
        block = data.vectors[first:first + PER_COLLECTION].astype(np.float64)
        for at, row in zip(picked, q64[picked] @ block.T, strict=True):
            result[at] = _best(row, k) + first + 1
    return result


def _best(sims: np.ndarray, k: int) -> np.ndarray:
    top = np.argpartition(-sims, k)[:k]
    ordered: np.ndarray = top[np.argsort(-sims[top])]
    return ordered


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean share of the true top-k among what was returned (a short answer counts as
    misses)."""
    k = int(truth.shape[1])
    hits = [len(set(f[:k]) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return sum(hits) / (k * len(hits))


def shape(data: Corpus, q: Queries, truth: np.ndarray) -> dict[str, float]:
    """Figures that say how text-like the vectors are, for the report."""
    rng = np.random.default_rng(3)
    a, b = rng.choice(len(data.vectors), (2, 2000))
    sample = data.vectors[rng.choice(len(data.vectors), 5000, replace=False)].astype(np.float64)
    eig = np.linalg.eigvalsh(np.cov(sample.T))
    top1 = data.vectors[truth[:, 0] - 1]
    top10 = data.vectors[truth[:, -1] - 1]
    return {
        "cos_random_pair": float(np.mean(np.sum(data.vectors[a] * data.vectors[b], axis=1))),
        "cos_query_source": float(np.mean(np.sum(q.vectors * data.vectors[q.source], axis=1))),
        "cos_query_top1": float(np.mean(np.sum(q.vectors * top1, axis=1))),
        "cos_query_top10": float(np.mean(np.sum(q.vectors * top10, axis=1))),
        "effective_dims": float(eig.sum() ** 2 / (eig ** 2).sum()),
    }


def load(conn: psycopg.Connection[Any], data: Corpus, maintenance_work_mem: str) -> dict[str, Any]:
    """COPY everything in with the chunk indexes dropped, then build them as the migration
    defines them (read back from the catalog, so a changed migration is what gets measured)."""
    defs = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
                        " AND indexname <> 'chunks_pkey' ORDER BY indexname").fetchall()
    for name, _ in defs:
        conn.execute(f'DROP INDEX "{name}"')
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    with conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO collections (id, name, embedding_model, dimensions) OVERRIDING SYSTEM"
            " VALUE VALUES (%s, %s, 'synthetic', %s)",
            [(c + 1, f"team-{c}", DIM) for c in range(COLLECTIONS)])
        with conn.cursor().copy("COPY documents (id, collection_id, source, media_type,"
                                " content_hash, bytes) FROM STDIN") as copy:
            for d in range(COLLECTIONS * PER_COLLECTION // CHUNKS_PER_DOCUMENT):
                c = d * CHUNKS_PER_DOCUMENT // PER_COLLECTION
                copy.write_row((d + 1, c + 1, f"docs/doc-{d}.md", "text/markdown",
                                f"{d:064x}", 4096))
        oid = dict(conn.execute("SELECT cfgname, oid::bigint FROM pg_ts_config WHERE cfgname"
                                " IN ('english', 'spanish')").fetchall())
        with conn.cursor().copy("COPY chunks (id, document_id, collection_id, ordinal, content,"
                                " language, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            # regconfig travels as its oid: binary COPY reads it with the oid type's receive.
            copy.set_types(["int8", "int8", "int8", "int4", "text", "oid", "vector"])
            for i, vector in enumerate(data.vectors):
                if i % 50_000 == 0:
                    print(f"   copying chunk {i:,}", flush=True)
                t = int(data.topic[i])
                copy.write_row((i + 1, int(data.document[i]) + 1, int(data.collection[i]) + 1,
                                i % CHUNKS_PER_DOCUMENT, data.texts[i],
                                oid[data.topic_language[t]], vector))
        for table in ("collections", "documents", "chunks"):
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'),"
                                 " (SELECT max(id) FROM {}))").format(
                                     sql.Literal(table), sql.Identifier(table)))
    timings["copy_s"] = time.perf_counter() - started
    conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
    timings["index_s"] = {}
    for name, definition in defs:
        print(f"   building {name}", flush=True)
        started = time.perf_counter()
        conn.execute(definition)
        timings["index_s"][name] = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE chunks")
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    timings["hnsw_definition"] = dict(defs)["chunks_embedding"]
    return timings


def rebuild(conn: psycopg.Connection[Any], m: int, ef_construction: int) -> float:
    """The migration's index with other build parameters; returns the build time."""
    conn.execute("DROP INDEX chunks_embedding")
    started = time.perf_counter()
    conn.execute("CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding"
                 f" vector_cosine_ops) WITH (m = {m}, ef_construction = {ef_construction})")
    return time.perf_counter() - started


def configure_server(url: str, pg: Any, shared_buffers: str) -> str:
    """Give the server the shared buffers a production server of this size would have, and
    restart it; returns its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    pg.stop()
    started: str = pg.start()
    return started


def build_parameters(definition: str) -> tuple[int, int]:
    """(m, ef_construction) of an HNSW index definition; pgvector's defaults where unset."""
    m = re.search(r"\bm\s*=\s*'?(\d+)", definition)
    efc = re.search(r"ef_construction\s*=\s*'?(\d+)", definition)
    return int(m.group(1)) if m else 16, int(efc.group(1)) if efc else 64
