"""Ingestion: file → sections → chunks → vectors (in batches) → one transaction per document.

Re-running it over the same files is cheap and safe: a file whose content hash is unchanged is
skipped, a changed one is replaced whole, and with ``prune`` the documents whose files are gone
are removed. A file that cannot be read (an unsupported type, a broken PDF) is reported and
nothing of it is written; the other files go on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from shared.knowledge.chunk import Chunk, chunk_document
from shared.knowledge.language import detect
from shared.knowledge.parse import BrokenDocument, UnsupportedType, parse_document
from shared.knowledge.store import (
    Collection,
    KnowledgeStore,
    NewChunk,
    check_model,
    passage_text,
)

# (texts, is_query) -> (model name, one unit vector per text)
Embed = Callable[[list[str], bool], Awaitable[tuple[str, list[np.ndarray]]]]
Status = Literal["added", "updated", "unchanged", "failed", "removed"]

EMBED_BATCH = 32


@dataclass(frozen=True)
class Outcome:
    source: str
    status: Status
    chunks: int = 0
    error: str | None = None
    document_id: int | None = None


class Ingestor:
    """Writes documents into collections. With ``writers`` (an API client's principals), each
    document goes in only while one of them may still write to its collection
    (:class:`~shared.knowledge.store.NotGranted` otherwise); without, as the operator."""

    def __init__(self, store: KnowledgeStore, embed: Embed, *, max_tokens: int = 256,
                 overlap_tokens: int = 40, batch: int = EMBED_BATCH,
                 writers: Sequence[str] | None = None) -> None:
        self._store = store
        self._writers = writers
        self._embed = embed
        self._max_tokens = max_tokens
        self._overlap = overlap_tokens
        self._batch = batch
        self._model: tuple[str, int] | None = None

    async def model(self) -> tuple[str, int]:
        """The embedding model's name and dimensions, as the model server reports them."""
        if self._model is None:
            name, vectors = await self._embed(["dimensions"], False)
            self._model = (name, int(vectors[0].shape[0]))
        return self._model

    async def collection(self, name: str) -> Collection:
        model, dimensions = await self.model()
        return await self._store.ensure_collection(name, model=model, dimensions=dimensions)

    async def ingest(self, collection: Collection, files: Iterable[tuple[str, bytes]], *,
                     prune: bool = False,
                     progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Ingest ``(source, bytes)`` pairs into ``collection``; with ``prune``, remove the
        documents whose source is not among them."""
        known = await self._store.hashes(collection)
        seen: set[str] = set()
        outcomes = []
        for source, data in files:
            seen.add(source)
            outcome = await self.ingest_one(collection, source, data, known.get(source))
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
        if prune:
            gone = sorted(set(known) - seen)
            if gone:
                await self._store.delete_sources(collection, gone)
            for source in gone:
                outcome = Outcome(source, "removed")
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
        return outcomes

    async def ingest_one(self, collection: Collection, source: str, data: bytes,
                         known_hash: str | None = None) -> Outcome:
        digest = hashlib.sha256(data).hexdigest()
        if known_hash == digest:
            return Outcome(source, "unchanged")
        try:
            document = parse_document(source, data)
        except (UnsupportedType, BrokenDocument) as exc:
            return Outcome(source, "failed", error=str(exc))
        chunks = chunk_document(document, max_tokens=self._max_tokens,
                                overlap_tokens=self._overlap)
        if not chunks:
            return Outcome(source, "failed", error="no text found in it" + (
                f" ({'; '.join(document.warnings)})" if document.warnings else ""))
        vectors = await self._vectors(collection, chunks)
        stored = [NewChunk(c.ordinal, c.heading, c.page, c.text, detect(c.text), v)
                  for c, v in zip(chunks, vectors, strict=True)]
        document_id = await self._store.put_document(
            collection, source=source, title=document.title, media_type=document.media_type,
            content_hash=digest, size=len(data), chunks=stored, writers=self._writers)
        return Outcome(source, "updated" if known_hash else "added", len(stored),
                       document_id=document_id)

    async def _vectors(self, collection: Collection, chunks: list[Chunk]) -> list[np.ndarray]:
        vectors: list[np.ndarray] = []
        for start in range(0, len(chunks), self._batch):
            texts = [passage_text(c.heading, c.text) for c in chunks[start:start + self._batch]]
            model, batch = await self._embed(texts, False)
            check_model(collection, model, int(batch[0].shape[0]))
            vectors += batch
        return vectors

