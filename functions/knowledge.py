"""The knowledge base as the functions use it: vectors come from the model server.

Looking up passages for a question: the collections granted to whoever asks, the question
embedded as a query, hybrid search (shared/knowledge/search.py), and only passages whose
vector is close enough to the question (``CHARLA_KB_MAX_DISTANCE``): "nothing relevant" must
be recognisable, so the bot can say it does not know instead of inventing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from functions.model_client import ModelClient
from shared.db import Database
from shared.knowledge.search import Passage, search
from shared.knowledge.store import Collection, KnowledgeStore

if TYPE_CHECKING:
    from shared.knowledge.ingest import Ingestor

log = logging.getLogger(__name__)

# (texts, is_query) -> (model name, one unit vector per text)
Embed = Callable[[list[str], bool], Awaitable[tuple[str, list[np.ndarray]]]]


DONT_KNOW = ("I don't know: I found nothing about that in the documents {whom} can read "
             "({names}).")


def dont_know(collections: Iterable[str], whom: str = "this chat") -> str:
    """The answer when the granted documents hold nothing relevant: no guess."""
    return DONT_KNOW.format(whom=whom, names=", ".join(collections))


@dataclass(frozen=True)
class Lookup:
    collections: list[Collection]  # readable by whoever asked
    passages: list[Passage]  # relevant enough to answer from


class Knowledge:
    def __init__(self, db: Database, model: ModelClient, *, passages: int = 4,
                 max_distance: float = 0.185) -> None:
        self.db = db
        self.store = KnowledgeStore(db)
        self._model = model
        self._k = passages
        self._max_distance = max_distance

    def embedder(self, sub: str) -> Embed:
        """Embedding through the model server, as ``sub`` (whose limits apply)."""
        async def embed(texts: list[str], query: bool) -> tuple[str, list[np.ndarray]]:
            return await self._model.embed(texts, sub=sub, query=query)

        return embed

    def ingestor(self, sub: str, *, writers: Sequence[str] | None = None) -> Ingestor:
        """An ingestor embedding as ``sub``; with ``writers``, it writes only where one of
        them may (an API client), without, anywhere (the operator)."""
        from shared.knowledge.ingest import Ingestor  # parsers load only when ingesting

        return Ingestor(self.store, self.embedder(sub), writers=writers)

    async def query_vector(self, question: str, *, sub: str) -> tuple[str, np.ndarray]:
        """The embedding model's name and the question's vector (as a query)."""
        model, [vector] = await self._model.embed([question], sub=sub, query=True)
        return model, vector

    async def lookup(self, principals: Sequence[str], question: str,
                     query: tuple[str, np.ndarray]) -> Lookup:
        """The collections ``principals`` may read, and the passages relevant to
        ``question`` in them (``query``: from :meth:`query_vector`)."""
        return await self.search_in(await self.store.readable(principals), question, query)

    async def search_in(self, collections: list[Collection], question: str,
                        query: tuple[str, np.ndarray]) -> Lookup:
        """The passages relevant to ``question`` in ``collections`` (already checked as
        readable by whoever asks)."""
        if not collections:
            return Lookup([], [])
        model, vector = query
        usable = [c for c in collections
                  if (c.embedding_model, c.dimensions) == (model, vector.shape[0])]
        if len(usable) < len(collections):
            log.warning("collections %s were embedded with another model; run charla reindex",
                        ", ".join(c.name for c in collections if c not in usable))
        found = await search(self.db, text=question, vector=vector,
                             collections=[c.id for c in usable], k=self._k)
        return Lookup(collections, [p for p in found if p.distance <= self._max_distance])
