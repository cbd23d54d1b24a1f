"""The Postgres connection pool (psycopg 3) with pgvector's types registered on every connection.

The pool checks a connection before lending it, so after a database restart the broken
connections are dropped and replaced instead of failing the next requests; a caller waits at
most ``db_timeout_s`` for a connection, then gets :class:`StorageError`, never a hang.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from shared.crypto import KeyRing
from shared.errors import ConfigError, StorageError
from shared.settings import Settings

log = logging.getLogger(__name__)

AsyncConn = psycopg.AsyncConnection[dict[str, object]]


async def _configure(conn: psycopg.AsyncConnection[object]) -> None:
    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        # Before the first migration the extension does not exist yet; the migration creates
        # it, and connections made after that register the type.
        log.debug("pgvector type not registered: extension not created yet")
    # Autocommit with explicit transactions where needed: no idle-in-transaction leftovers.
    await conn.set_autocommit(True)


class Pool(AsyncConnectionPool):
    """A pool that carries the data keys read from the same settings, so that
    ``Database(make_pool(settings))`` seals message bodies with them."""

    def __init__(self, *args: Any, keys: KeyRing, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys = keys


def make_pool(settings: Settings, *, open_now: bool = False) -> AsyncConnectionPool:
    """A pool for ``DATABASE_URL``; it opens lazily on first use unless ``open_now``."""
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL is not set (charla up sets it for the embedded server)")
    return Pool(
        settings.database_url.reveal(),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_timeout_s,
        kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(settings.db_timeout_s))},
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=60.0,
        open=False,
        name="charla",
        keys=KeyRing.from_settings(settings),
    )


class Database:
    """A lazily opened pool: Lambda containers and ASGI apps call :meth:`connection` freely.

    ``keys`` seal and open the message bodies stored through it (the pool's, by default).
    """

    def __init__(self, pool: AsyncConnectionPool, keys: KeyRing | None = None) -> None:
        self.pool = pool
        if keys is None:
            keys = pool.keys if isinstance(pool, Pool) else KeyRing()
        self.keys = keys
        self._opened = False
        # Connections of their own that users of this database hold (a job queue's session):
        # closed with it.
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Have :meth:`close` await ``closer`` first."""
        if closer not in self._closers:
            self._closers.append(closer)

    async def open(self) -> None:
        if not self._opened:
            self._opened = True
            await self.pool.open(wait=False)

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            await closer()
        if self._opened:
            self._opened = False
            await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConn]:
        """A pooled connection; driver errors come out as :class:`StorageError`."""
        await self.open()
        try:
            async with self.pool.connection() as conn:
                yield conn  # type: ignore[misc]
        except PoolTimeout as exc:
            raise StorageError("no database connection available") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StorageError("database unavailable") from exc
