"""The admin view in headless Chromium: health, usage chart, failed jobs with retry, collections."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.async_api import BrowserContext, expect

from shared.db import Database, make_pool
from shared.queue.postgres import PgQueue
from tests.functions.api.grants import let_write
from tests.web.conftest import Site


@dataclass
class Seeded:
    clients: list[str]
    job_id: int
    collection: str


def past_usage(database_url: str, clients: list[str]) -> None:
    """A day of exchanges, as the API would have recorded them, so the chart has a shape."""
    rng = random.Random(7)
    rows = []
    for hours_ago in range(1, 24):
        for weight, client in enumerate(clients, start=1):
            for _ in range(rng.randint(0, weight + 1)):
                rows.append((client, rng.randint(40, 400), rng.randint(10, 200), hours_ago))
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO api_exchanges (client, model, stream, prompt_tokens, completion_tokens,"
            " latency_ms, status, created_at) VALUES (%s, 'smollm2-135m-instruct', true, %s, %s,"
            " 900, 200, now() - make_interval(hours => %s))", rows)


@pytest.fixture(scope="module")
async def seeded(site: Site) -> AsyncIterator[Seeded]:
    assert site.settings.database_url is not None
    clients = ["support-bot", "wiki-search", "ci-release-notes"]
    past_usage(site.settings.database_url.reveal(), clients)
    collection = f"handbook-{uuid.uuid4().hex[:4]}"
    await let_write(site.settings, collection, "ci")
    async with httpx.AsyncClient(timeout=120) as http:
        for client in clients[:2]:  # and one exchange each now, through the real API
            reply = await http.post(site.url + "/v1/chat/completions",
                                    headers=site.headers(client), json={
                                        "messages": [{"role": "user", "content": "Hi"}],
                                        "max_tokens": 3})
            assert reply.status_code == 200, reply.text
        uploaded = await http.post(
            f"{site.url}/v1/documents?collection={collection}&name=onboarding.md",
            content=b"# Onboarding\n\nYour laptop waits at reception on day one.\n",
            headers=site.headers("ci", "documents"))
        assert uploaded.status_code == 201, uploaded.text
    db = Database(make_pool(site.settings))
    try:
        queue = PgQueue(db)
        await queue.enqueue("slack_reply", {"channel": "C1"})
        [job] = await queue.claim(1)
        await queue.fail(job, "Slack answered 404 channel_not_found")
        yield Seeded(clients, int(job.id), collection)
    finally:
        await db.close()


async def test_operators_see_health_usage_failed_jobs_and_collections_and_retry_a_job(
    context: BrowserContext, site: Site, seeded: Seeded, screenshots: Path
) -> None:
    page = await context.new_page()
    await page.goto(f"{site.url}/admin#token={site.token('ops', 'admin')}")
    assert page.url == site.url + "/admin"
    health = page.locator("#health")
    await expect(health.locator("div", has_text="Model server")).to_contain_text("ok (")
    await expect(health.locator("div", has_text="Database")).to_contain_text("ok")
    await expect(health.locator("div", has_text="Failed jobs").locator("dd")).to_have_text("1")

    chart = page.locator("#chart")
    await expect(chart.locator("polyline")).to_have_count(3)
    for client in seeded.clients:
        await expect(chart.locator(".legend")).to_contain_text(f"{client}:")
        await expect(page.locator("#usage-table")).to_contain_text(client)
    assert await chart.locator("circle title").count() > 10
    await page.get_by_label("Show").select_option("requests")
    await expect(chart.locator(".legend")).to_contain_text("requests")

    job = page.locator("#jobs tbody tr")
    await expect(job).to_have_count(1)
    await expect(job).to_contain_text("Slack answered 404 channel_not_found")
    row = page.locator("#collections tbody tr", has_text=seeded.collection)
    await expect(row.locator("td").first).to_have_text("1")  # documents
    await expect(row.locator("td").last).to_have_text("api:ci (writes)")  # granted --write
    await page.get_by_label("Show").select_option("tokens")
    await page.screenshot(path=screenshots / "admin.png", full_page=True)

    await page.get_by_role("button", name=f"Retry job {seeded.job_id}").click()
    await expect(page.locator("#jobs-status")).to_have_text(
        f"Job {seeded.job_id} is queued again.")
    await expect(page.locator("#jobs-empty")).to_be_visible()
    await expect(health.locator("div", has_text="Failed jobs").locator("dd")).to_have_text("0")


async def test_a_token_without_the_admin_scope_is_told_how_to_get_one(
    context: BrowserContext, site: Site
) -> None:
    page = await context.new_page()
    await page.goto(f"{site.url}/admin#token={site.token('lucia')}")
    await expect(page.locator("#signin-error")).to_contain_text(
        "has no admin scope: make one with charla token --sub ops --scope admin")
    await expect(page.locator("#app")).to_be_hidden()
    # A pasted one is checked with the server too.
    await page.get_by_label("An operator's token").fill(site.token("pablo"))
    await page.keyboard.press("Enter")
    await expect(page.locator("#signin-error")).to_contain_text("no admin scope")


async def test_the_chat_page_links_to_the_admin_view_for_operators(
    context: BrowserContext, site: Site
) -> None:
    page = await context.new_page()
    await page.goto(f"{site.url}/#token={site.token('ops', 'admin')}")
    await page.get_by_role("link", name="Admin").click()
    await expect(page).to_have_url(site.url + "/admin")
    await expect(page.locator("#who")).to_have_text("ops")
