"""The knowledge base in Postgres: collections, their documents and chunks, and who reads them.

A collection is bound to the embedding model (name and dimensions) its vectors came from:
adding to it, or searching it, with another model is refused with a clear message, since
vectors of two models are not comparable (``charla reindex`` re-embeds a collection). A
document is replaced whole, in one transaction: a reader sees the old chunks or the new ones,
never a mix, and a failed ingestion leaves nothing behind.

Who may do what is a grant per collection and principal: reading, or reading and writing.
Methods that take ``readers`` or ``writers`` check the grant in the same statement (or
transaction) as the work, so a revoke is never half-seen; ``None`` there means the operator's
command line, which may do anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from shared.db import Database
from shared.embeddings_schema import DIMENSIONS
from shared.errors import CharlaError

if TYPE_CHECKING:
    import numpy as np  # annotations only: the webhook functions load this module


class KnowledgeError(CharlaError):
    """A knowledge-base request that cannot be done (the message says why, for the user)."""


class NotGranted(KnowledgeError):
    """A principal asked to write to a collection not granted to it for that (or unknown)."""


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    embedding_model: str
    dimensions: int


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embedding_model: str
    dimensions: int
    documents: int
    chunks: int


@dataclass(frozen=True)
class Grant:
    """Who may read, or read and write, one collection."""

    collection: str
    principal: str
    write: bool

    @property
    def rights(self) -> str:
        return "read+write" if self.write else "read"


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    heading: str | None
    page: int | None
    content: str
    language: str  # a text-search configuration: english, spanish or simple
    embedding: np.ndarray


@dataclass(frozen=True)
class StoredDocument:
    id: int
    collection: str
    source: str
    title: str | None
    media_type: str
    content_hash: str
    bytes: int
    chunks: int


def _collection(row: dict[str, Any]) -> Collection:
    return Collection(cast(int, row["id"]), str(row["name"]), str(row["embedding_model"]),
                      cast(int, row["dimensions"]))


class KnowledgeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def collection(self, name: str) -> Collection | None:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT id, name, embedding_model, dimensions FROM collections WHERE name = %s",
                (name,))
            row = await cur.fetchone()
        return _collection(row) if row else None

    async def ensure_collection(self, name: str, *, model: str, dimensions: int) -> Collection:
        """The collection ``name``, created for ``model`` if new; refused if it holds vectors
        of another model."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO collections (name, embedding_model, dimensions) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
                " RETURNING id, name, embedding_model, dimensions", (name, model, dimensions))
            row = await cur.fetchone()
        assert row is not None
        found = _collection(row)
        check_model(found, model, dimensions)
        return found

    async def collections(self) -> list[CollectionInfo]:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT c.name, c.embedding_model, c.dimensions,"
                " (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS documents,"
                " (SELECT count(*) FROM chunks k WHERE k.collection_id = c.id) AS chunks"
                " FROM collections c ORDER BY c.name")
            rows = await cur.fetchall()
        return [CollectionInfo(str(r["name"]), str(r["embedding_model"]),
                               cast(int, r["dimensions"]), cast(int, r["documents"]),
                               cast(int, r["chunks"])) for r in rows]

    async def forget_collection(self, name: str) -> int:
        """Delete a collection with its documents, chunks and grants; return the chunks gone."""
        async with self._db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT count(*) AS n FROM chunks k JOIN collections c ON c.id ="
                " k.collection_id WHERE c.name = %s", (name,))
            row = await cur.fetchone()
            gone = await conn.execute("DELETE FROM collections WHERE name = %s", (name,))
            if gone.rowcount == 0:
                raise KnowledgeError(f"no collection named {name!r}")
        return cast(int, row["n"]) if row else 0

    async def hashes(self, collection: Collection) -> dict[str, str]:
        """Each document's source and content hash: what re-ingestion compares against."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT source, content_hash FROM documents WHERE collection_id = %s",
                (collection.id,))
            return {str(r["source"]): str(r["content_hash"]) for r in await cur.fetchall()}

    async def put_document(self, collection: Collection, *, source: str, title: str | None,
                           media_type: str, content_hash: str, size: int,
                           chunks: Sequence[NewChunk],
                           writers: Sequence[str] | None = None) -> int:
        """Store a document and its chunks, replacing any earlier version; return its id.
        With ``writers``, only if one of them may write to ``collection`` (else
        :class:`NotGranted`), checked in the same transaction."""
        for chunk in chunks:
            if chunk.embedding.shape != (collection.dimensions,):
                raise KnowledgeError(f"a chunk's vector has {chunk.embedding.shape[0]} "
                                     f"dimensions; {collection.name!r} holds "
                                     f"{collection.dimensions}")
        async with self._db.connection() as conn, conn.transaction():
            if writers is not None:
                # Embedding took a while since the route checked: a revoke in between wins.
                # FOR SHARE holds the grant until this document is in, so a revoke that
                # comes now waits for it rather than being overtaken.
                cur = await conn.execute(
                    "SELECT 1 FROM collection_grants WHERE collection_id = %s AND principal ="
                    " ANY(%s) AND may_write LIMIT 1 FOR SHARE", (collection.id, list(writers)))
                if await cur.fetchone() is None:
                    raise NotGranted(f"may not write to {collection.name!r}")
            cur = await conn.execute(
                "INSERT INTO documents (collection_id, source, title, media_type, content_hash,"
                " bytes) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (collection_id, source) DO UPDATE SET title = EXCLUDED.title,"
                " media_type = EXCLUDED.media_type, content_hash = EXCLUDED.content_hash,"
                " bytes = EXCLUDED.bytes, updated_at = now() RETURNING id",
                (collection.id, source, title, media_type, content_hash, size))
            row = await cur.fetchone()
            assert row is not None
            document_id = cast(int, row["id"])
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
            async with conn.cursor() as copy_cur, copy_cur.copy(
                    "COPY chunks (document_id, collection_id, ordinal, heading, page, content,"
                    " language, embedding) FROM STDIN") as copy:
                for c in chunks:
                    await copy.write_row((document_id, collection.id, c.ordinal, c.heading,
                                          c.page, c.content, c.language,
                                          vector_literal(c.embedding)))
        return document_id

    async def documents(self, collection: str | None = None, *,
                        readers: Sequence[str] | None = None) -> list[StoredDocument]:
        """The documents of ``collection`` (None: of all), only of collections one of
        ``readers`` may read when given."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT d.id, c.name AS collection, d.source, d.title, d.media_type,"
                " d.content_hash, d.bytes, (SELECT count(*) FROM chunks k WHERE"
                " k.document_id = d.id) AS chunks FROM documents d JOIN collections c ON"
                " c.id = d.collection_id WHERE (%s::text IS NULL OR c.name = %s)"
                " AND (%s::text[] IS NULL OR c.id IN (SELECT collection_id FROM"
                " collection_grants WHERE principal = ANY(%s::text[])))"
                " ORDER BY c.name, d.source",
                (collection, collection, _listed(readers), _listed(readers)))
            rows = await cur.fetchall()
        return [StoredDocument(cast(int, r["id"]), str(r["collection"]), str(r["source"]),
                               cast(str | None, r["title"]), str(r["media_type"]),
                               str(r["content_hash"]), cast(int, r["bytes"]),
                               cast(int, r["chunks"])) for r in rows]

    async def delete_document(self, document_id: int, *,
                              writers: Sequence[str] | None = None) -> bool:
        """Delete a document (only if one of ``writers`` may write to its collection, when
        given); False if there was none to delete."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM documents WHERE id = %s AND (%s::text[] IS NULL OR collection_id"
                " IN (SELECT collection_id FROM collection_grants WHERE principal ="
                " ANY(%s::text[]) AND may_write))",
                (document_id, _listed(writers), _listed(writers)))
            return cur.rowcount == 1

    async def delete_sources(self, collection: Collection, sources: Sequence[str]) -> int:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM documents WHERE collection_id = %s AND source = ANY(%s)",
                (collection.id, list(sources)))
            return cur.rowcount

    async def reembed(self, collection: Collection, embed: Callable[
            [list[str]], Awaitable[tuple[str, list[np.ndarray]]]], *, batch: int = 64) -> int:
        """Give every chunk of ``collection`` a vector from the model ``embed`` uses now, and
        record that model; one transaction, so searches see the old space or the new one."""
        count = 0
        async with self._db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id, heading, content FROM chunks WHERE collection_id = %s ORDER BY id",
                (collection.id,))
            rows = await cur.fetchall()
            model, dimensions = collection.embedding_model, collection.dimensions
            for start in range(0, len(rows), batch):
                part = rows[start:start + batch]
                model, vectors = await embed([passage_text(cast(str | None, r["heading"]),
                                                           str(r["content"])) for r in part])
                dimensions = int(vectors[0].shape[0])
                if dimensions != DIMENSIONS:
                    raise KnowledgeError(f"{model} gives {dimensions}-d vectors; this database "
                                         f"stores {DIMENSIONS}-d ones (shared/migrations/0003)")
                async with conn.cursor() as update:
                    await update.executemany(
                        "UPDATE chunks SET embedding = %s::vector WHERE id = %s",
                        [(vector_literal(v), r["id"]) for r, v in zip(part, vectors,
                                                                      strict=True)])
                count += len(part)
            await conn.execute(
                "UPDATE collections SET embedding_model = %s, dimensions = %s WHERE id = %s",
                (model, dimensions, collection.id))
        return count

    # Who may read or write what.

    async def grant(self, collection: str, principal: str, *, write: bool = False) -> None:
        """Let ``principal`` read ``collection`` (and write to it, with ``write``). A grant
        only adds: a read grant leaves an earlier write grant as it is."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO collection_grants (collection_id, principal, may_write) SELECT id,"
                " %s, %s FROM collections WHERE name = %s ON CONFLICT (collection_id, principal)"
                " DO UPDATE SET may_write = collection_grants.may_write OR EXCLUDED.may_write"
                " RETURNING 1", (principal, write, collection))
            if await cur.fetchone() is None:
                raise KnowledgeError(f"no collection named {collection!r}")

    async def revoke(self, collection: str, principal: str, *, write_only: bool = False
                     ) -> bool:
        """Take ``principal``'s grant on ``collection`` back (with ``write_only``, only the
        right to write: it may still read); False if it had nothing to take."""
        if write_only:
            sql = ("UPDATE collection_grants SET may_write = false WHERE principal = %s AND"
                   " may_write AND collection_id = (SELECT id FROM collections WHERE name = %s)")
        else:
            sql = ("DELETE FROM collection_grants WHERE principal = %s AND collection_id ="
                   " (SELECT id FROM collections WHERE name = %s)")
        async with self._db.connection() as conn:
            cur = await conn.execute(sql, (principal, collection))
            return cur.rowcount == 1

    async def grants(self) -> list[Grant]:
        """Every grant, by collection then principal."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT c.name, g.principal, g.may_write FROM collection_grants g JOIN"
                " collections c ON c.id = g.collection_id ORDER BY c.name, g.principal")
            return [Grant(str(r["name"]), str(r["principal"]), bool(r["may_write"]))
                    for r in await cur.fetchall()]

    async def writable(self, name: str, principals: Sequence[str]) -> Collection | None:
        """The collection ``name`` if any of ``principals`` may write to it; None both when
        it may not and when there is no such collection (a caller tells nobody which)."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.name, c.embedding_model, c.dimensions FROM collections c"
                " WHERE c.name = %s AND EXISTS (SELECT 1 FROM collection_grants g WHERE"
                " g.collection_id = c.id AND g.principal = ANY(%s) AND g.may_write)",
                (name, list(principals)))
            row = await cur.fetchone()
        return _collection(row) if row else None

    async def readable(self, principals: Sequence[str]) -> list[Collection]:
        """The collections any of ``principals`` was granted (none: an empty list)."""
        if not principals:
            return []
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT c.id, c.name, c.embedding_model, c.dimensions FROM"
                " collections c JOIN collection_grants g ON g.collection_id = c.id"
                " WHERE g.principal = ANY(%s) ORDER BY c.name", (list(principals),))
            return [_collection(r) for r in await cur.fetchall()]

    async def passage(self, chunk_id: int, *, readers: Sequence[str] | None = None
                      ) -> dict[str, Any] | None:
        """One chunk with where it came from (for a citation's link), or None: also when
        none of ``readers`` (if given) may read its collection."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT k.id AS chunk_id, k.document_id, c.name AS collection, d.source,"
                " d.title, k.heading AS section, k.page, k.content AS text FROM chunks k"
                " JOIN documents d ON d.id = k.document_id JOIN collections c ON"
                " c.id = k.collection_id WHERE k.id = %s AND (%s::text[] IS NULL OR"
                " c.id IN (SELECT collection_id FROM collection_grants WHERE principal ="
                " ANY(%s::text[])))", (chunk_id, _listed(readers), _listed(readers)))
            row = await cur.fetchone()
        return dict(row) if row is not None else None


def _listed(principals: Sequence[str] | None) -> list[str] | None:
    """``principals`` as a query parameter: None (no check) stays None, so an empty list
    still means "nobody", never "everybody"."""
    return None if principals is None else list(principals)


def check_model(collection: Collection, model: str, dimensions: int) -> None:
    """Refuse to mix vector spaces."""
    if (collection.embedding_model, collection.dimensions) != (model, dimensions):
        raise KnowledgeError(
            f"collection {collection.name!r} holds vectors of {collection.embedding_model} "
            f"({collection.dimensions} dimensions); this server embeds with {model} "
            f"({dimensions}). Re-embed it with: charla reindex --collection {collection.name}")


def passage_text(heading: str | None, content: str) -> str:
    """What is embedded for a chunk: its heading gives it context ("Vacation: 25 days...")."""
    return f"{heading}: {content}" if heading else content


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of ``vector``."""
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"
