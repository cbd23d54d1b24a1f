"""The chat page when the answer is hostile, the model server is down, or a limit trips.

These use a fixed upstream in place of the model server (see FakeModelServer) or none at
all: a real model cannot be told to answer with a ``<script>`` tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import ServerThread, free_port
from tests.web.conftest import FakeModelServer, Site, start_site

HOSTILE = ("Here is **the** answer: <script>window.__pwned = 1</script> and "
           "<img src=x onerror=\"window.__pwned = 2\"> and [a link](javascript:alert(1)).")


@pytest.fixture(scope="module")
def fake_model() -> Iterator[tuple[FakeModelServer, str]]:
    fake = FakeModelServer(answer=HOSTILE)
    server = ServerThread(fake.app()).start()
    yield fake, server.url
    server.stop()


@pytest.fixture(scope="module")
def fixed_site(service_keys: tuple[str, str], fake_model: tuple[FakeModelServer, str],
               database: str, redis_url: str) -> Iterator[Site]:
    """The functions app in front of the fixed upstream, allowing 2 questions a minute."""
    running = start_site(service_keys, fake_model[1], database, redis_url,
                         CHARLA_API_RATE_LIMIT="2/minute")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def site_without_model(service_keys: tuple[str, str], database: str,
                       redis_url: str) -> Iterator[Site]:
    """The functions app pointed at a port where no model server listens."""
    running = start_site(service_keys, f"http://127.0.0.1:{free_port()}", database, redis_url)
    yield running
    running.stop()


async def signed_in(context: BrowserContext, site: Site, sub: str | None = None) -> Page:
    page = await context.new_page()
    await page.goto(f"{site.url}/#token={site.token(sub)}")
    await expect(page.locator("#question")).to_be_focused()
    return page


async def ask(page: Page, question: str) -> None:
    await page.locator("#question").fill(question)
    await page.keyboard.press("Enter")


async def test_an_answer_holding_a_script_tag_is_shown_as_text_and_never_runs(
    context: BrowserContext, fixed_site: Site
) -> None:
    page = await signed_in(context, fixed_site)
    await ask(page, "Show me some HTML.")
    answer = page.locator(".msg.assistant").last
    await expect(answer.locator(".copy")).to_be_visible()
    body = answer.locator(".body")
    text = await body.inner_text()
    assert "<script>window.__pwned = 1</script>" in text
    assert '<img src=x onerror="window.__pwned = 2">' in text
    assert await body.locator("script, img").count() == 0
    assert await body.locator("strong").inner_text() == "the"
    # A javascript: link stays text; only http(s) links become links.
    assert await body.locator("a").count() == 0 and "[a link](javascript:alert(1))" in text
    assert await page.evaluate("window.__pwned") is None


async def test_the_answer_grows_on_the_page_while_it_streams(
    context: BrowserContext, fixed_site: Site
) -> None:
    page = await signed_in(context, fixed_site)
    await ask(page, "Stream it.")
    answer = page.locator(".msg.assistant").last
    # The stop button is there while the answer comes in piece by piece, then goes.
    await expect(page.locator("#stop")).to_be_visible()
    await expect(answer.locator(".body")).to_contain_text("Here is")
    partial = await answer.locator(".body").inner_text()
    await expect(answer.locator(".copy")).to_be_visible()
    whole = await answer.locator(".body").inner_text()
    assert len(partial) < len(whole) and whole.startswith(partial.rstrip())
    await expect(page.locator("#stop")).to_be_hidden()


async def test_the_rate_limit_message_says_how_long_to_wait(
    context: BrowserContext, fixed_site: Site
) -> None:
    page = await signed_in(context, fixed_site)
    for question in ("One?", "Two?"):
        await ask(page, question)
        await expect(page.locator(".msg.assistant").last.locator(".copy")).to_be_visible()
    await ask(page, "Three?")
    error = page.locator(".msg.assistant").last.locator(".error")
    await expect(error).to_contain_text("Rate limit reached (2 per 1 minute).")
    wait = re.search(r"Try again in (\d+) s\.", await error.inner_text())
    assert wait and 1 <= int(wait.group(1)) <= 60
    await expect(error.get_by_role("button", name="Try again")).to_be_visible()


async def test_a_model_server_that_is_down_gets_a_clear_message(
    context: BrowserContext, site_without_model: Site
) -> None:
    page = await signed_in(context, site_without_model)
    await expect(page.locator("#banner")).to_have_text(
        "The model server is not answering right now.")
    await ask(page, "Anyone there?")
    error = page.locator(".msg.assistant").last.locator(".error")
    await expect(error).to_contain_text("The model server is down or not answering.")
    # The question stays, and can be sent again once the model server is back.
    await expect(page.locator(".msg.user .body").last).to_have_text("Anyone there?")
