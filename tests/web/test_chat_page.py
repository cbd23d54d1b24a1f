"""The chat page in headless Chromium, against the real functions app and model server."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from shared.db import Database, make_pool
from shared.jwt_tokens import TokenSigner
from shared.knowledge.store import KnowledgeStore
from tests.functions.api.grants import let_write
from tests.web.conftest import Site

HANDBOOK = b"""# Travel handbook

## Trains

Book second class for trips under four hours; first class above that.

## Hotels

A hotel night costs up to 140 euros in Madrid and 220 dollars in Boston.

Booking notes must never hold <script>window.__pwned = 1</script> or other markup.
"""
QUESTION = "How much can I spend on a hotel night in Madrid?"


@dataclass
class Library:
    collection: str
    reader: str  # a subject whose token may read the collection


@pytest.fixture(scope="module")
async def library(site: Site) -> AsyncIterator[Library]:
    lib = Library(f"travel-{uuid.uuid4().hex[:6]}", f"maria-{uuid.uuid4().hex[:4]}")
    await let_write(site.settings, lib.collection, "ci")
    async with httpx.AsyncClient(timeout=120) as http:
        uploaded = await http.post(
            f"{site.url}/v1/documents?collection={lib.collection}&name=handbook.md",
            content=HANDBOOK, headers=site.headers("ci", "documents"))
        assert uploaded.status_code == 201, uploaded.text
    assert site.settings.database_url is not None
    db = Database(make_pool(site.settings))
    try:
        await KnowledgeStore(db).grant(lib.collection, f"api:{lib.reader}")
        yield lib
    finally:
        await db.close()


async def open_signed_in(context: BrowserContext, site: Site, sub: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{site.url}/#token={site.token(sub)}")
    await expect(page.locator("#question")).to_be_focused()
    return page


async def test_the_sign_in_link_signs_in_and_leaves_no_token_in_the_url(
    context: BrowserContext, site: Site
) -> None:
    page = await open_signed_in(context, site, "lucia")
    assert page.url == site.url + "/"
    await expect(page.locator("#who")).to_have_text("lucia")
    assert await page.evaluate("sessionStorage.getItem('charla.token')")
    assert await page.evaluate("localStorage.getItem('charla.token')") is None
    await expect(page.locator("#admin-link")).to_be_hidden()
    await page.reload()
    await expect(page.locator("#who")).to_have_text("lucia")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#signin")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('charla.token')") is None


async def test_a_pasted_token_signs_in_and_a_bad_one_is_refused_with_a_reason(
    context: BrowserContext, site: Site
) -> None:
    page = await context.new_page()
    await page.goto(site.url + "/")
    field, error = page.get_by_label("Your API token"), page.locator("#signin-error")
    await field.fill("not a token")
    await field.press("Enter")
    await expect(error).to_contain_text("does not look like a token")
    forged = TokenSigner(secret="s" * 40, audience=site.settings.api_jwt_audience,
                         issuer=site.settings.api_jwt_issuer).sign("mallory", ttl_s=600)
    await field.fill(forged)
    await field.press("Enter")
    await expect(error).to_contain_text("This token was refused: token signature does not verify")
    await field.fill(site.token("pablo"))
    await page.get_by_label("Remember me on this browser").check()
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#who")).to_have_text("pablo")
    assert await page.evaluate("localStorage.getItem('charla.token')")


async def test_an_answer_streams_in_with_sources_that_open_as_text(
    context: BrowserContext, site: Site, library: Library, screenshots: Path
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await open_signed_in(context, site, library.reader)
    picker = page.get_by_label("Answer from")
    await expect(picker.locator("option", has_text=library.collection)).to_have_count(1)
    await picker.select_option(library.collection)
    # Record every length the answer had on screen, to see it grow rather than land whole.
    await page.evaluate("""() => {
        window.lengths = [];
        new MutationObserver(() => {
            const body = document.querySelector('.msg.assistant:last-child .body');
            if (body) window.lengths.push(body.textContent.length);
        }).observe(document.getElementById('messages'),
                   {subtree: true, childList: true, characterData: true});
    }""")
    await page.locator("#question").fill(QUESTION)
    await page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant").last
    await expect(answer.locator(".copy")).to_be_visible(timeout=60_000)
    shown = await answer.locator(".body").inner_text()
    assert shown.strip()
    lengths = await page.evaluate("window.lengths.filter(n => n > 0)")
    assert len(set(lengths)) >= 2, "the answer appeared whole, not streamed"

    hotels = answer.locator(".sources a",
                            has_text=re.compile(r"^\[\d\] handbook\.md › .*Hotels$"))
    await expect(hotels).to_be_visible(timeout=15_000)
    # Under the source, the sentence of it that supports the answer (the citation's quote).
    quote = answer.locator(".sources li").filter(has_text="Hotels").locator(".quote")
    await expect(quote).to_have_text(
        "A hotel night costs up to 140 euros in Madrid and 220 dollars in Boston.")
    await page.screenshot(path=screenshots / "chat.png")

    await hotels.click()
    dialog = page.locator("#passage")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#passage-text")).to_contain_text("140 euros in Madrid")
    passage = await dialog.locator("#passage-text").inner_text()
    assert "<script>window.__pwned = 1</script>" in passage
    assert await dialog.locator("script").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert page.url == site.url + "/"  # shown in place: no navigation carried the token
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    await answer.get_by_role("button", name="Copy this answer").click()
    await expect(answer.locator(".copy")).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    stored = await page.evaluate(
        "sub => JSON.parse(localStorage.getItem('charla.conversations.' + sub))", library.reader)
    assert copied == stored[0]["messages"][-1]["content"]


async def test_conversations_stay_in_the_browser_and_switch_from_the_keyboard(
    context: BrowserContext, site: Site
) -> None:
    page = await open_signed_in(context, site, f"ana-{uuid.uuid4().hex[:4]}")
    await page.locator("#question").fill("Say hello.")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.assistant .copy")).to_be_visible(timeout=60_000)
    await page.keyboard.press("Alt+n")
    conversations = page.locator("#conversations .open")
    await expect(conversations).to_have_count(2)
    await expect(page.locator("#messages .empty")).to_be_visible()
    await page.reload()
    await expect(conversations).to_have_count(2)
    await expect(conversations.first).to_have_attribute("aria-current", "true")
    await page.keyboard.press("Alt+ArrowDown")
    await expect(conversations.nth(1)).to_have_attribute("aria-current", "true")
    await expect(page.locator(".msg.user .body")).to_have_text("Say hello.")
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("?")
    await expect(page.locator("#help")).to_be_visible()


async def test_the_page_fits_a_phone_screen(context: BrowserContext, site: Site) -> None:
    page = await open_signed_in(context, site, "phone-user")
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await page.get_by_role("button", name="Conversations").click()
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(page.locator("#question")).to_be_in_viewport()
