"""The pages' routes and the admin API over plain HTTP: headers, static files, scopes, data."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import psycopg
import pytest

from functions.web.pages import STATIC
from shared.db import Database, make_pool
from shared.knowledge.store import KnowledgeStore
from shared.queue.postgres import PgQueue
from tests.functions.api.grants import let_write
from tests.web.conftest import Site

PAGES = ["/", "/admin"]
ASSETS = ["/web/chat.js", "/web/admin.js", "/web/common.js", "/web/markdown.js",
          "/web/chart.js", "/web/style.css", "/web/icon.svg"]
ADMIN_GETS = ["/v1/admin/health", "/v1/admin/usage", "/v1/admin/jobs/failed",
              "/v1/admin/collections"]


@pytest.fixture
async def db(site: Site) -> AsyncIterator[Database]:
    assert site.settings.database_url is not None
    database = Database(make_pool(site.settings))
    yield database
    await database.close()


@pytest.mark.parametrize("path", PAGES + ASSETS)
async def test_pages_and_their_files_are_public_and_carry_a_strict_policy(
    site: Site, http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(site.url + path)
    assert response.status_code == 200
    csp = dict(part.strip().split(" ", 1)
               for part in response.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == csp["style-src"] == csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert csp["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    kind = next((v for k, v in expected.items() if path.endswith(k)), "text/html")
    assert response.headers["content-type"].startswith(kind)


@pytest.mark.parametrize("path", ["/web/nothing.js", "/web/chat.html", "/web/%2e%2e/app.py"])
async def test_only_the_known_static_files_are_served(site: Site, http: httpx.AsyncClient,
                                                      path: str) -> None:
    response = await http.get(site.url + path)
    assert response.status_code in (401, 404)
    assert "import" not in response.text


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        self.inline += [f"{tag} {n}" for n in names if n.startswith("on") or n == "style"]
        if tag == "style":
            self.inline.append("style element")
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script")


@pytest.mark.parametrize("name", ["chat.html", "admin.html"])
def test_the_pages_have_no_inline_script_style_or_handler(name: str) -> None:
    markup = _Markup()
    markup.feed((STATIC / name).read_text())
    assert markup.inline == []
    assert [s.get("src") for s in markup.scripts] == [f"/web/{name.split('.')[0]}.js"]
    assert all(s.get("type") == "module" for s in markup.scripts)


def test_no_script_writes_html_from_strings() -> None:
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                       r"new Function|setAttribute\(\s*['\"](?:style|on)")
    for script in STATIC.glob("*.js"):
        assert not sinks.search(script.read_text()), script.name


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_admin_routes_need_a_token_with_the_admin_scope(
    site: Site, http: httpx.AsyncClient, path: str
) -> None:
    assert (await http.get(site.url + path)).status_code == 401
    plain = await http.get(site.url + path, headers=site.headers(None, "documents"))
    assert plain.status_code == 403
    assert plain.json()["error"]["code"] == "insufficient_scope"
    assert "--scope admin" in plain.json()["error"]["message"]
    assert (await http.get(site.url + path, headers=site.headers("ops", "admin"))
            ).status_code == 200
    refused = await http.post(site.url + "/v1/admin/jobs/1/retry", headers=site.headers())
    assert refused.status_code == 403


async def test_admin_health_reports_the_model_server_and_the_database(
    site: Site, http: httpx.AsyncClient
) -> None:
    health = (await http.get(site.url + "/v1/admin/health",
                             headers=site.headers("ops", "admin"))).json()
    assert health["status"] == "ok" and health["model_server"] == "ok"
    assert health["database"] == "ok" and health["model"] == site.settings.model_name
    assert isinstance(health["failed_jobs"], int) and health["model_server_ms"] >= 0


async def test_usage_counts_requests_and_tokens_per_client_by_hour_and_day(
    site: Site, http: httpx.AsyncClient
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:4]}", f"bob-{uuid.uuid4().hex[:4]}"
    ask = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 3}
    for sub in (alice, alice, bob):
        reply = await http.post(site.url + "/v1/chat/completions", json=ask,
                                headers=site.headers(sub))
        assert reply.status_code == 200, reply.text
    admin = site.headers("ops", "admin")
    for bucket, hours in (("hour", 24), ("day", 720)):
        # The audit rows are written just after each answer is sent: wait for the last one.
        deadline = time.monotonic() + 10
        while True:
            usage = (await http.get(f"{site.url}/v1/admin/usage?bucket={bucket}&hours={hours}",
                                    headers=admin)).json()
            series = {s["client"]: s for s in usage["series"]}
            if bob in series or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert usage["bucket"] == bucket and usage["since"] < usage["until"]
        assert series[alice]["requests"] == 2 and series[bob]["requests"] == 1
        assert series[alice]["tokens"] == (series[alice]["prompt_tokens"] +
                                           series[alice]["completion_tokens"]) > 0
        assert sum(p["requests"] for p in series[alice]["points"]) == 2
    for query in ("bucket=week", "hours=0", "hours=lots", "bucket=hour&hours=100000"):
        bad = await http.get(f"{site.url}/v1/admin/usage?{query}", headers=admin)
        assert bad.status_code == 400, query


async def test_a_failed_job_is_listed_with_its_error_and_can_be_retried_once(
    site: Site, http: httpx.AsyncClient, db: Database
) -> None:
    queue = PgQueue(db)
    await queue.enqueue("slack_reply", {"channel": "C1"})
    [job] = await queue.claim(1)
    await queue.fail(job, "Slack answered channel_not_found")
    admin = site.headers("ops", "admin")
    listed = (await http.get(site.url + "/v1/admin/jobs/failed", headers=admin)).json()["data"]
    row = next(j for j in listed if j["id"] == int(job.id))
    assert row["error"] == "Slack answered channel_not_found" and row["kind"] == "slack_reply"
    assert row["attempts"] == 1 and row["finished_at"]
    retried = await http.post(f"{site.url}/v1/admin/jobs/{job.id}/retry", headers=admin)
    assert retried.json() == {"id": int(job.id), "state": "queued"}
    again = await http.post(f"{site.url}/v1/admin/jobs/{job.id}/retry", headers=admin)
    assert again.status_code == 404
    assert (await http.post(f"{site.url}/v1/admin/jobs/x/retry", headers=admin)
            ).status_code == 400
    assert site.settings.database_url is not None
    with psycopg.connect(site.settings.database_url.reveal()) as conn:
        state = conn.execute("SELECT state FROM jobs WHERE id = %s", (int(job.id),)).fetchone()
    assert state == ("queued",)


async def test_collections_are_listed_with_counts_and_readers(
    site: Site, http: httpx.AsyncClient, db: Database
) -> None:
    name = f"hr-{uuid.uuid4().hex[:6]}"
    await let_write(site.settings, name, "ci")
    uploaded = await http.post(
        f"{site.url}/v1/documents?collection={name}&name=leave.md",
        content=b"# Leave\n\n## Vacation\n\nTwenty-five days a year.\n\n## Sick leave\n\n"
                b"Tell your lead before ten.\n",
        headers=site.headers("ci", "documents"))
    assert uploaded.status_code == 201, uploaded.text
    await KnowledgeStore(db).grant(name, "api:alice")
    listed = (await http.get(site.url + "/v1/admin/collections",
                             headers=site.headers("ops", "admin"))).json()["data"]
    row = next(c for c in listed if c["name"] == name)
    assert row["documents"] == 1 and row["chunks"] == uploaded.json()["chunks"] >= 2
    # The publisher was granted read+write (programs write only where granted): it reads too.
    assert row["readers"] == ["api:alice", "api:ci"] and row["embedding_model"]
    assert row["writers"] == ["api:ci"]


async def test_an_admin_exports_then_forgets_a_person_over_http(
    site: Site, http: httpx.AsyncClient
) -> None:
    person = f"erin-{uuid.uuid4().hex[:6]}"
    said = f"ibis-{uuid.uuid4().hex[:6]}"
    reply = await http.post(site.url + "/v1/chat/completions", headers=site.headers(person),
                            json={"messages": [{"role": "user", "content": f"Hi, {said}."}],
                                  "max_tokens": 3})
    assert reply.status_code == 200
    url = f"{site.url}/v1/admin/users/api/{person}"
    admin = site.headers("ops", "admin")
    assert (await http.get(url, headers=site.headers("someone"))).status_code == 403
    assert (await http.delete(url)).status_code == 401
    # The exchange is recorded just after the answer is sent: wait for it (the test's
    # timeout bounds the wait; a busy machine only makes it longer).
    exported = (await http.get(url, headers=admin)).json()
    while not exported["api_exchanges"]:
        await asyncio.sleep(0.05)
        exported = (await http.get(url, headers=admin)).json()
    assert said in str(exported["api_exchanges"][0]["request_messages"])
    # The API's own limit knows the client by its bare subject, written before the answer;
    # the model server's quota as api:<subject>, every half second, so it may not be yet.
    assert any(f"/charla-api/{person}/" in key for key in exported["rate_limit_counters"])
    gone = (await http.delete(url, headers=admin)).json()
    assert gone["removed"]["api_exchanges"] == 1 and gone["removed"]["rate_limit_counters"] >= 1
    # Whether the model server wrote its charges before the forget (deleted with the rest)
    # or holds them still (never written now: tests/privacy/test_forget_race.py forces that
    # order), nothing is left to find.
    again = (await http.delete(url, headers=admin)).json()
    assert "nothing removed" in again["summary"], again
    assert (await http.get(url, headers=admin)).json()["rate_limit_counters"] == {}
    assert (await http.get(f"{site.url}/v1/admin/users/irc/{person}",
                           headers=admin)).status_code == 400
