"""The web pages against the real functions app, driven by headless Chromium (Playwright).

Each module starts its own functions app on a fresh database, in front of the real model
server (llama-server with the bundled model) unless a test needs one fixed answer. Browser
tests skip, saying why, only when no Chromium can be had; ``make test`` installs Debian's
``chromium`` when it is missing and it runs as root.

Two tests take the screenshots the README links to. They save them in the test's temporary
folder, so a run of the tests leaves a clean clone clean; with ``CHARLA_SCREENSHOTS=1`` (``make
screenshots``) they write ``docs/screenshots/`` instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from functions.api.auth import client_signer
from shared.settings import Settings
from tests.conftest import (
    Gateway,
    ServerThread,
    api_env,
    fresh_database,
    make_settings,
    start_api,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def chromium_path() -> str | None:
    """Debian's chromium (or CHARLA_CHROMIUM); Playwright downloads no browser of its own."""
    for candidate in (os.environ.get("CHARLA_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Site:
    """A functions app serving the pages, and tokens for it."""

    url: str
    settings: Settings
    server: ServerThread

    def token(self, sub: str | None = None, *scopes: str) -> str:
        return client_signer(self.settings).sign(sub or f"person-{uuid.uuid4().hex[:6]}",
                                                 ttl_s=3600, scopes=scopes)

    def headers(self, sub: str | None = None, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, *scopes)}"}

    def stop(self) -> None:
        self.server.stop()


def start_site(keys: tuple[str, str], model_server_url: str, database_url: str, redis: str,
               **extra: str) -> Site:
    # Short answers keep the browser tests quick; the page itself sends no max_tokens.
    env = api_env(keys, model_server_url, database_url, redis,
                  CHARLA_DEFAULT_MAX_TOKENS="40", **extra)
    settings = make_settings(**env)
    server = start_api(settings)
    return Site(server.url, settings, server)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """The folder a test saves its screenshots in: docs/screenshots only when asked
    (``CHARLA_SCREENSHOTS=1``), since those files are tracked."""
    if os.environ.get("CHARLA_SCREENSHOTS", "") not in ("", "0"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path


@pytest.fixture(scope="module")
def database(pg_url: str) -> str:
    """A database of the module's own: its failed jobs and usage are the only ones there."""
    return fresh_database(pg_url)


@pytest.fixture(scope="module")
def site(service_keys: tuple[str, str], gateway: Gateway, database: str,
         redis_url: str) -> Iterator[Site]:
    """The functions app in front of the real model server."""
    running = start_site(service_keys, gateway.url, database, redis_url)
    yield running
    running.stop()


@dataclass
class FakeModelServer:
    """A stand-in for our own model server that streams one fixed answer, in pieces.

    The real model cannot be made to say a given text (a ``<script>`` tag, say); the model
    server is ours, not an outside party, but for these few tests a fixed upstream on
    loopback is what lets us check how the page shows such an answer.
    """

    answer: str = "Hello."
    pieces: int = 6
    delay_s: float = 0.15
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            size = max(1, -(-len(self.answer) // self.pieces))
            parts = [self.answer[i:i + size] for i in range(0, len(self.answer), size)]

            def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                         "created": 0, "model": body.get("model", "fake"),
                         "choices": choices, **extra}
                return f"data: {json.dumps(chunk)}\n\n".encode()

            async def events() -> AsyncIterator[bytes]:
                for part in parts:
                    yield event([{"index": 0, "delta": {"content": part},
                                  "finish_reason": None}])
                    await asyncio.sleep(self.delay_s)
                yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
                yield event([], usage={"prompt_tokens": 9, "completion_tokens": len(parts),
                                       "total_tokens": 9 + len(parts)})
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return Starlette(routes=[Route("/healthz", healthz),
                                 Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium per module."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium here: install Debian's package (apt-get install chromium); "
                    "make test does it when run as root")
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright is in the test extra: pip install -e .[test]")
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=path, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile per test: its own storage, no token left from another test."""
    ctx = await browser.new_context(viewport={"width": 1200, "height": 760},
                                    color_scheme="light", locale="en-GB",
                                    timezone_id="Europe/Madrid")
    ctx.set_default_timeout(30_000)
    problems: list[str] = []

    def watch(page: Page) -> None:
        # Uncaught errors and policy violations (a blocked inline script, a Trusted Types
        # refusal) fail the test; the browser's own note on a 4xx/5xx response does not.
        page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Failed to load resource" not in msg.text else None)

    ctx.on("page", watch)
    yield ctx
    await ctx.close()
    assert problems == []
