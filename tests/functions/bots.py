"""The bots end to end: the functions app and the worker on real Postgres and the real model
server, with Slack, Telegram and Discord played by local fakes of their APIs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from functions.slack.verify import SignatureVerifier
from functions.worker.main import serve
from shared.conversations import turn_text
from shared.crypto import KeyRing
from shared.settings import Settings
from tests.conftest import ServerThread, api_env, make_settings, start_api
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import BOT_TOKEN as SLACK_TOKEN
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.functions.discord.signing import ApplicationKeys

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TELEGRAM_TOKEN = "7000000001:AAH-test-token-for-the-fake-bot-api0"
TELEGRAM_SECRET = "charla-webhook-secret_0123456789"
DISCORD_APP = "1300000000000000042"
DISCORD_TOKEN = "MTMwMDAwMDAwMDAwMDAwMDA0Mg.fake.bot-token"


class WorkerThread:
    """``functions.worker`` serving in a thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await serve(self.settings, self._stop)

        asyncio.run(main())

    def start(self) -> WorkerThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@dataclass
class Bots:
    url: str
    settings: Settings
    slack: FakeSlack
    telegram: FakeTelegram
    discord: FakeDiscord
    discord_keys: ApplicationKeys
    servers: list[ServerThread]
    worker: WorkerThread

    # Signed deliveries, as each platform sends them.

    async def slack_event(self, http: httpx.AsyncClient, body: dict[str, Any] | bytes, *,
                          timestamp: int | None = None, retry: int | None = None,
                          signature: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": signature or SignatureVerifier(SLACK_SECRET).sign(raw, ts)}
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await http.post(self.url + "/slack/events", content=raw, headers=headers)

    async def telegram_update(self, http: httpx.AsyncClient, update: dict[str, Any], *,
                              secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return await http.post(self.url + "/telegram/webhook", json=update, headers=headers)

    async def discord_interaction(self, http: httpx.AsyncClient, body: dict[str, Any] | bytes,
                                  *, timestamp: int | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return await http.post(self.url + "/discord/interactions", content=raw,
                               headers={"Content-Type": "application/json",
                                        **self.discord_keys.headers(ts, raw)})

    # What the database holds.

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self.settings.database_url is not None
        with psycopg.connect(self.settings.database_url.reveal()) as conn:
            return conn.execute(sql, params).fetchall()

    def turns(self, platform: str, key: str) -> list[tuple[str, str]]:
        """(role, text) of each stored turn, opened with the stack's data keys."""
        names = ("conversation_id", "role", "delivery_id", "content", "content_sealed")
        rows = self.rows(
            "SELECT t.conversation_id, t.role, t.delivery_id, t.content, t.content_sealed"
            " FROM turns t JOIN conversations c ON c.id = t.conversation_id"
            " WHERE c.platform = %s AND c.key = %s ORDER BY t.id", platform, key)
        keys = KeyRing.from_settings(self.settings)
        return [(r[1], turn_text(keys, dict(zip(names, r, strict=True)))) for r in rows]

    def job_state(self, platform: str, delivery_id: str) -> list[tuple[str, int, str | None]]:
        return [(r[0], r[1], r[2]) for r in self.rows(
            "SELECT state, attempts, last_error FROM jobs WHERE payload->>'platform' = %s"
            " AND payload->>'delivery_id' = %s", platform, delivery_id)]

    def stop(self) -> None:
        self.worker.stop()
        for server in self.servers:
            server.stop()


def bots_env(keys: tuple[str, str], model_server_url: str, pg: str, redis: str,
             fakes: dict[str, str], discord_key: str, **extra: str) -> dict[str, str]:
    env = {
        "SLACK_SIGNING_SECRET": SLACK_SECRET, "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": fakes["slack"],
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "TELEGRAM_API_URL": fakes["telegram"],
        "DISCORD_PUBLIC_KEY": discord_key, "DISCORD_APPLICATION_ID": DISCORD_APP,
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN, "DISCORD_API_URL": fakes["discord"],
        "CHARLA_BOT_MAX_TOKENS": "48", "CHARLA_JOB_BACKOFF": "0.2",
        "CHARLA_EDIT_INTERVAL": "0.2", "CHARLA_PLATFORM_TIMEOUT": "1.5",
        "CHARLA_WORKER_CONCURRENCY": "4",
    }
    return api_env(keys, model_server_url, pg, redis, **(env | extra))


def start_bots(keys: tuple[str, str], model_server_url: str, pg: str, redis: str,
               **extra: str) -> Bots:
    slack, telegram = FakeSlack(), FakeTelegram(TELEGRAM_TOKEN)
    discord, discord_keys = FakeDiscord(DISCORD_APP, DISCORD_TOKEN), ApplicationKeys()
    fakes = {name: ServerThread(fake.app).start()
             for name, fake in (("slack", slack), ("telegram", telegram), ("discord", discord))}
    settings = make_settings(**bots_env(keys, model_server_url, pg, redis,
                                        {k: s.url for k, s in fakes.items()},
                                        discord_keys.public_key_hex, **extra))
    app = start_api(settings)
    worker = WorkerThread(settings).start()
    return Bots(app.url, settings, slack, telegram, discord, discord_keys,
                [app, *fakes.values()], worker)


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0,  # noqa: ASYNC109
                     every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s (last: {value!r})")
        await asyncio.sleep(every)


class Switch:
    """A TCP forwarder to ``target`` that can be cut: while off, it drops every connection.

    It stands for the network between the functions and the model server, so a test can make
    the model server unreachable for a while without stopping the real one.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.on = True
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.on:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if not self.on:
                        break
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
