"""Each source under an answer on the chat page shows the sentence of it that supports the answer,
as the bots' sources do; an answer the fact check replaced with a quote shows none under them.

Headless Chromium, the real functions app and model server; between them the proxy of
tests/functions/rewriting.py puts a chosen answer in place of the model's, so that the fact
check, not the model, decides each case.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect

from shared.db import Database, make_pool
from shared.knowledge.store import KnowledgeStore
from tests.conftest import Gateway, ServerThread
from tests.functions.api.grants import let_write
from tests.functions.rewriting import Rewriter
from tests.web.conftest import Site, start_site
from tests.web.test_chat_page import HANDBOOK, QUESTION, open_signed_in

SENTENCE = "A hotel night costs up to 140 euros in Madrid and 220 dollars in Boston."


@pytest.fixture(scope="module")
def rewritten_site(service_keys: tuple[str, str], gateway: Gateway, database: str,
                   redis_url: str) -> Iterator[tuple[Site, Rewriter]]:
    rewriter = Rewriter(gateway.url)
    proxy = ServerThread(rewriter.app()).start()
    running = start_site(service_keys, proxy.url, database, redis_url,
                         CHARLA_KB_PRIME_ANSWERS="off")
    yield running, rewriter
    running.stop()
    proxy.stop()


@pytest.fixture(scope="module")
async def reader(rewritten_site: tuple[Site, Rewriter]) -> AsyncIterator[str]:
    """A subject that may read a collection holding the travel handbook."""
    site, _ = rewritten_site
    collection, sub = f"travel-{uuid.uuid4().hex[:6]}", f"nora-{uuid.uuid4().hex[:4]}"
    await let_write(site.settings, collection, "ci")
    async with httpx.AsyncClient(timeout=120) as http:
        uploaded = await http.post(
            f"{site.url}/v1/documents?collection={collection}&name=handbook.md",
            content=HANDBOOK, headers=site.headers("ci", "documents"))
        assert uploaded.status_code == 201, uploaded.text
    db = Database(make_pool(site.settings))
    try:
        await KnowledgeStore(db).grant(collection, f"api:{sub}")
    finally:
        await db.close()
    yield sub


async def asked(context: BrowserContext, site: Site, reader: str) -> tuple[Page, Locator]:
    """The page, signed in as ``reader``, once the hotel question is answered; the answer."""
    page = await open_signed_in(context, site, reader)
    await page.locator("#question").fill(QUESTION)
    await page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant").last
    await expect(answer.locator(".copy")).to_be_visible(timeout=60_000)
    return page, answer


async def test_a_kept_answer_shows_each_source_with_its_supporting_sentence(
    context: BrowserContext, rewritten_site: tuple[Site, Rewriter], reader: str
) -> None:
    site, rewriter = rewritten_site
    rewriter.answer = "A hotel night in Madrid costs up to 140 euros [1]."
    page, answer = await asked(context, site, reader)
    await expect(answer.locator(".body")).to_have_text(rewriter.answer)
    await expect(answer.locator(".sources li .quote")).to_have_text([SENTENCE])
    # Kept with the conversation: the quote is still there after a reload.
    await page.reload()
    await expect(page.locator(".msg.assistant .sources .quote")).to_have_text([SENTENCE])


async def test_an_answer_replaced_by_a_quote_shows_none_under_its_sources(
    context: BrowserContext, rewritten_site: tuple[Site, Rewriter], reader: str
) -> None:
    site, rewriter = rewritten_site
    rewriter.answer = "A hotel night in Madrid costs up to 999 euros [1]."
    _, answer = await asked(context, site, reader)
    await expect(answer.locator(".body")).to_contain_text(SENTENCE)  # the quote, in its place
    await expect(answer.locator(".body")).not_to_contain_text("999")
    await expect(answer.locator(".sources a.source")).not_to_have_count(0)
    await expect(answer.locator(".sources .quote")).to_have_count(0)
