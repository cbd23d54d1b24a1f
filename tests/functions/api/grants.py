"""What an operator does before a program may publish documents, for tests that need it."""

from __future__ import annotations

from shared.db import Database, make_pool
from shared.knowledge.store import KnowledgeStore
from shared.settings import Settings

DIMENSIONS = 384  # the bundled embedder's (multilingual-e5-small)


async def let_write(settings: Settings, collection: str, *clients: str) -> None:
    """``charla grant COLLECTION api:CLIENT --write`` for each client: the collection created
    empty if new, bound to the model server's embedding model; programs cannot create one."""
    db = Database(make_pool(settings))
    try:
        store = KnowledgeStore(db)
        await store.ensure_collection(collection, model=settings.embedding_model_name,
                                      dimensions=DIMENSIONS)
        for client in clients:
            await store.grant(collection, f"api:{client}", write=True)
    finally:
        await db.close()


async def let_read(settings: Settings, collection: str, *clients: str) -> None:
    """``charla grant COLLECTION api:CLIENT`` for each client."""
    db = Database(make_pool(settings))
    try:
        store = KnowledgeStore(db)
        for client in clients:
            await store.grant(collection, f"api:{client}")
    finally:
        await db.close()


async def take_write(settings: Settings, collection: str, client: str) -> None:
    """``charla revoke COLLECTION api:CLIENT --write``: it may still read."""
    db = Database(make_pool(settings))
    try:
        assert await KnowledgeStore(db).revoke(collection, f"api:{client}", write_only=True)
    finally:
        await db.close()
