"""What anyone on the network can send the functions app, and the gateway: never a 5xx, never
a traceback in the log.

- Lone surrogates (valid JSON, not Unicode): the API says 400 and names the field, and the
  kept-alive connection serves the next request; a webhook acknowledges and answers the rest of
  the message, with U+FFFD in the surrogate's place (a refusal would be redelivered for ever).
- A client that leaves half-way through its body: one short line; a body that never comes:
  408 within CHARLA_BODY_TIMEOUT; a chunked body over the limit: 413.

The first part runs the real functions app (no database, no model server: every case here is
decided before either is needed) under uvicorn with the production limits; the second the whole
stack of tests/functions/bots.py, since an answer is what shows the message got through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from functions.api.auth import client_signer, client_verifier
from functions.app import create_app
from functions.model_client import ModelClient
from shared.settings import Settings
from tests.conftest import API_SECRET, Api, Gateway
from tests.fakes.slack_api import TEAM_ID
from tests.functions.bots import (
    SLACK_SECRET,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    Bots,
    eventually,
)
from tests.functions.discord.signing import ApplicationKeys
from tests.functions.test_bots_discord import interaction
from tests.functions.test_bots_slack import answered, mention
from tests.functions.test_bots_telegram import done, sent_to, update
from tests.shared.served import (
    Served,
    assert_at_most_one_short_line,
    capture_all_logs,
    chunked,
    connect,
    request,
    served,
    until,
)

DISCORD_KEYS = ApplicationKeys()
WEBHOOKS = ["/slack/events", "/telegram/webhook", "/discord/interactions"]
# What each webhook needs to get as far as reading the body: Slack and Discord read it before
# checking its signature (the signature covers it), Telegram checks its header first.
NEEDS = {"/telegram/webhook": {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}}


def functions_settings(service_keys: tuple[str, str], **env: str) -> Settings:
    return Settings.from_env({
        "CHARLA_SERVICE_PRIVATE_KEY": service_keys[0], "CHARLA_API_JWT_SECRET": API_SECRET,
        "MODEL_SERVER_URL": "http://127.0.0.1:9",  # nothing here is meant to reach it
        "SLACK_SIGNING_SECRET": SLACK_SECRET, "SLACK_BOT_TOKEN": "xoxb-test",
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "TELEGRAM_BOT_USERNAME": "charla_bot",
        "DISCORD_PUBLIC_KEY": DISCORD_KEYS.public_key_hex,
        "DISCORD_APPLICATION_ID": "1300000000000000042",
        "CHARLA_MAX_BODY_BYTES": "2048", **env})


def start(settings: Settings) -> Iterator[Served]:
    app = create_app(settings, verifier=client_verifier(settings), model=ModelClient(settings),
                     db=None, housekeeping=False)
    with served(app, settings) as server:
        yield server


@pytest.fixture(scope="module")
def functions(service_keys: tuple[str, str]) -> Iterator[Served]:
    """The functions app, as ``python -m functions`` serves it."""
    yield from start(functions_settings(service_keys))


@pytest.fixture(scope="module")
def impatient(service_keys: tuple[str, str]) -> Iterator[Served]:
    """The same with a deadline short enough to wait for in a test."""
    yield from start(functions_settings(service_keys, CHARLA_BODY_TIMEOUT="1"))


def bearer(service_keys: tuple[str, str]) -> dict[str, str]:
    token = client_signer(functions_settings(service_keys)).sign("mallory", ttl_s=600)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


LONE = b'{"messages":[{"role":"user","content":"\\ud800 hi"}]}'


# Lone surrogates at the API.

async def test_a_lone_surrogate_is_a_400_naming_the_field_and_the_connection_serves_on(
        functions: Served, service_keys: tuple[str, str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    headers = bearer(service_keys)
    async with connect(functions.port) as conn:
        # The body, then the raw bytes json also decodes to a surrogate.
        for body in (LONE, b'{"messages":[{"role":"user","content":"hi \xed\xa0\x80"}]}'):
            await conn.send(request("POST", "/v1/chat/completions", body, headers))
            status, _, answer = await conn.response()
            assert status == 400
            error = json.loads(answer)["error"]
            assert (error["param"], error["type"]) == ("messages", "invalid_request_error")
            assert error["message"].startswith("messages[0].content holds a lone surrogate")
        # The same connection answers the next request: no reset after a 500 any more.
        await conn.send(request("POST", "/v1/chat/completions", b'{"messages":[]}', headers))
        status, _, answer = await conn.response()
        assert (status, json.loads(answer)["error"]["message"]) == (
            400, "'messages' must not be empty")
    await functions.idle()
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


async def test_a_lone_surrogate_in_a_moderation_input_is_a_400(
        functions: Served, service_keys: tuple[str, str]) -> None:
    async with connect(functions.port) as conn:
        await conn.send(request("POST", "/v1/moderations", b'{"input":["fine","\\udfff"]}',
                                bearer(service_keys)))
        status, _, answer = await conn.response()
    assert status == 400
    assert json.loads(answer)["error"]["param"] == "input"


# Bodies that do not come whole.

@pytest.mark.parametrize("path", WEBHOOKS)
async def test_a_client_that_leaves_mid_body_is_one_short_line(
        functions: Served, path: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    # The case: Content-Length 1000, one byte, gone. No credentials.
    async with connect(functions.port) as conn:
        await conn.send(request("POST", path, b"{", NEEDS.get(path), length=1000))
        await until(lambda: functions.busy)
    await functions.idle()
    assert_at_most_one_short_line(caplog)
    assert [r.getMessage() for r in caplog.records if r.name == "shared.http"] == [
        f"POST {path}: the client left before its body arrived"]


@pytest.mark.parametrize("path", [*WEBHOOKS, "/v1/chat/completions"])
async def test_a_body_that_never_comes_is_a_408(
        impatient: Served, path: str, service_keys: tuple[str, str],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    capture_all_logs(caplog, monkeypatch)
    headers = {**NEEDS.get(path, {}), **bearer(service_keys)}
    async with connect(impatient.port) as conn:
        await conn.send(request("POST", path, b"{", headers, length=1000))
        status, response_headers, answer = await conn.response()
        assert await conn.closed_by_server()
    await impatient.idle()
    assert (status, response_headers["connection"]) == (408, "close")
    assert json.loads(answer)["error"]["code"] == "request_timeout"
    assert_at_most_one_short_line(caplog)


async def test_three_hundred_slow_bodies_are_all_let_go_within_the_deadline(
        impatient: Served) -> None:
    # The measurement: 300 of these stayed open for over a minute. Each now gets its
    # 408, or is closed where its headers came too late (this process plays all 300 clients
    # and the server, so some are sent late), and none is held.
    async def slow_client() -> int | None:
        async with connect(impatient.port) as conn:
            await conn.send(request("POST", "/slack/events", b"{", length=1000))
            try:
                status = (await conn.response())[0]
            except (asyncio.IncompleteReadError, ConnectionResetError):
                return None  # closed by the header deadline
            assert await conn.closed_by_server()
            return status

    statuses = await asyncio.gather(*(slow_client() for _ in range(300)))
    assert set(statuses) <= {408, None}
    await impatient.idle()


@pytest.mark.parametrize("path", ["/slack/events", "/v1/chat/completions"])
async def test_an_oversized_chunked_body_is_413(functions: Served, path: str,
                                                service_keys: tuple[str, str]) -> None:
    # No Content-Length: only read_body's count of what streams in stops it (2048 bytes here).
    async with connect(functions.port) as conn:
        await conn.send(chunked(path, [b" " * 1000] * 3, bearer(service_keys)))
        status, _, answer = await conn.response()
    assert status == 413
    assert json.loads(answer)["error"]["message"] == "the request body is over the 2048-byte limit"


# Lone surrogates from the platforms: acknowledged, and the rest of the message answered.

async def test_a_slack_message_with_a_lone_surrogate_is_acknowledged_and_answered(
        bots: Bots, http: httpx.AsyncClient) -> None:
    body = mention("\ud800 What is two plus two?")
    raw = json.dumps(body).encode()  # as Slack escapes it: \ud800
    response = await bots.slack_event(http, raw)
    assert response.status_code == 200
    [answer] = await answered(bots, body)
    assert answer.strip()
    channel, thread = body["event"]["channel"], body["event"]["ts"]
    assert bots.turns("slack", f"{TEAM_ID}:{channel}:{thread}")[0] == (
        "user", "\ufffd What is two plus two?")


async def test_a_telegram_message_with_a_lone_surrogate_is_acknowledged_and_answered(
        bots: Bots, http: httpx.AsyncClient) -> None:
    upd = update(text="hi \udc00 what colour is the sky?")
    response = await http.post(bots.url + "/telegram/webhook", content=json.dumps(upd).encode(),
                               headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
                                        "Content-Type": "application/json"})
    assert response.status_code == 200
    await done(bots, upd)
    chat = upd["message"]["chat"]["id"]
    assert sent_to(bots, chat)
    assert bots.turns("telegram", str(chat))[0] == ("user",
                                                    "hi \ufffd what colour is the sky?")


async def test_a_discord_question_with_a_lone_surrogate_is_deferred_and_answered(
        bots: Bots, http: httpx.AsyncClient) -> None:
    body = interaction(question="\ud800 What colour is grass?")
    bots.discord.open_interaction(body["token"])
    response = await bots.discord_interaction(http, json.dumps(body).encode())
    assert (response.status_code, response.json()) == (200, {"type": 5})
    answer = await eventually(
        lambda: (text := bots.discord.original(body["token"])) and not text.endswith("…")
        and text, timeout=60)
    assert answer.strip()


# Text in URLs.

async def test_url_text_that_is_not_unicode_is_never_a_5xx(api: Api, http: httpx.AsyncClient
                                                           ) -> None:
    # Percent-encoded bytes that are not UTF-8, a surrogate's among them: uvicorn and Starlette
    # decode paths and query strings with errors="replace", so the app sees U+FFFD.
    token = client_signer(api.settings).sign("mallory", ttl_s=600,
                                             scopes=("documents", "admin"))
    bad = "%ED%A0%80%FF"
    for method, path in (("GET", f"/v1/documents?collection={bad}"),
                         ("GET", f"/v1/admin/users/slack/{bad}"),
                         ("GET", f"/v1/passages/{bad}"),
                         ("DELETE", f"/v1/documents/{bad}")):
        response = await http.request(method, api.url + path,
                                      headers={"Authorization": f"Bearer {token}"})
        assert response.status_code < 500, (path, response.text)


# The gateway, from a service client (the functions, or anything holding a service token).

async def test_the_gateway_answers_a_lone_surrogate_with_a_400(gateway: Gateway,
                                                               http: httpx.AsyncClient) -> None:
    headers = {**gateway.headers(), "Content-Type": "application/json"}
    for path, raw, field in (("/v1/chat/completions", LONE, "messages"),
                             ("/v1/embeddings", b'{"input":["a","\\ud800"]}', "input")):
        response = await http.post(gateway.url + path, content=raw, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == field
