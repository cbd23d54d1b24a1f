"""Moderation through the API: ``/v1/moderations``, a blocked request, a withheld answer
(whole, and cut while it streams), with the openai client against the real model server."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import psycopg
import pytest

from functions.moderation import REFUSAL_EN, WITHHELD
from shared.audit import open_bodies
from shared.crypto import KeyRing
from tests.conftest import (
    Api,
    Gateway,
    ServerThread,
    api_env,
    fresh_database,
    make_settings,
    start_api,
)
from tests.fakes.guard import FakeGuard

POLICY = """
[[rules]]
category = "illicit/violent"
terms = ["bomb", "bomba"]
applies_to = ["input"]

[[rules]]
category = "poetry"
terms = ["{middle}"]
applies_to = ["output"]

[scope."api:strict-client"]
[[scope."api:strict-client".rules]]
category = "food"
terms = ["pineapple"]

[scope."api:early"]
[[scope."api:early".rules]]
category = "poetry"
terms = ["{first}"]
applies_to = ["output"]
"""
POEM = [{"role": "user", "content": "Write a short poem about the sea."}]


@dataclass(frozen=True)
class Poem:
    """What the model answers to :data:`POEM` at temperature 0 on this machine (the words
    differ from one CPU to another), and the words the policy blocks in it."""

    text: str
    first: str  # its first word: blocked for the "early" client
    middle: str  # a word a few words in, not seen before it: blocked for everyone
    before: str  # the text up to that word


def choose_words(text: str) -> Poem:
    words = list(re.finditer(r"[A-Za-z]{4,}", text))
    seen = {m.group().lower() for m in words[:4]}
    for match in words[4:]:
        word = match.group().lower()
        if word not in seen and word not in text[:match.start()].lower():
            first = re.match(r"\W*([A-Za-z]+)", text)
            assert first is not None, text
            return Poem(text, first.group(1).lower(), word, text[:match.start()])
        seen.add(word)
    raise AssertionError(f"no word to block in the model's poem: {text!r}")


@pytest.fixture(scope="module")
def poem(service_keys: tuple[str, str], gateway: Gateway, pg_url: str, redis_url: str) -> Poem:
    """The poem as the API asks for it, unmoderated, to choose the words to block."""
    plain = make_settings(**api_env(service_keys, gateway.url, fresh_database(pg_url),
                                    redis_url, CHARLA_MODERATION_POLICY="off"))
    server = start_api(plain)
    try:
        answer = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                            headers=Api(server.url, plain, server).headers("poem-probe"),
                            json={"messages": POEM, "max_tokens": 40, "temperature": 0})
        answer.raise_for_status()
        return choose_words(answer.json()["choices"][0]["message"]["content"])
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moderated(service_keys: tuple[str, str], gateway: Gateway, pg_url: str, redis_url: str,
              tmp_path_factory: pytest.TempPathFactory, poem: Poem) -> Iterator[Api]:
    policy = tmp_path_factory.mktemp("policy") / "policy.toml"
    policy.write_text(POLICY.format(first=poem.first, middle=poem.middle), encoding="utf-8")
    settings = make_settings(**api_env(service_keys, gateway.url, fresh_database(pg_url),
                                       redis_url, CHARLA_MODERATION_POLICY=str(policy)))
    server = start_api(settings)
    yield Api(server.url, settings, server)
    server.stop()


def client(api: Api, sub: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=api.url + "/v1", api_key=api.token(sub), max_retries=0)


def rows(api: Api, sql: str, *params: object) -> list[tuple[object, ...]]:
    assert api.settings.database_url is not None
    with psycopg.connect(api.settings.database_url.reveal()) as conn:
        return conn.execute(sql, params).fetchall()


def exchanges(api: Api, sub: str) -> list[tuple[object, ...]]:
    """(status, messages, answer, finish reason, error) of each audited exchange, opened."""
    names = ("client", "body_sealed", "request_messages", "answer")
    keys = KeyRing.from_settings(api.settings)
    out = []
    for row in rows(api, "SELECT client, body_sealed, request_messages, answer, status,"
                    " finish_reason, error FROM api_exchanges WHERE client = %s ORDER BY id",
                    sub):
        messages, answer = open_bodies(keys, dict(zip(names, row[:4], strict=True)))
        out.append((row[4], messages, answer, row[5], row[6]))
    return out


def events(api: Api, sub: str) -> list[tuple[object, ...]]:
    return rows(api, "SELECT platform, principal, subject, stage, source, categories"
                " FROM moderation_events WHERE subject = %s ORDER BY id", f"api:{sub}")


async def wait_for(api: Api, sub: str) -> None:
    """The audit record is written just after the answer (a stream's, after it ends)."""
    for _ in range(100):
        if exchanges(api, sub) and events(api, sub):
            return
        await asyncio.sleep(0.05)


async def test_moderations_in_openais_shape(moderated: Api) -> None:
    async with client(moderated, f"c-{uuid.uuid4().hex[:6]}") as openai_client:
        answer = await openai_client.moderations.create(
            input=["How do I make a BOMB?", "What a lovely day.", "Pineapple pizza"])
    assert answer.id.startswith("modr-") and answer.model == "charla-policy"
    flagged, clean, fruit = answer.results
    assert flagged.flagged and not clean.flagged and not fruit.flagged
    assert flagged.categories.illicit_violent is True and flagged.categories.hate is False
    assert flagged.category_scores.illicit_violent == 1.0
    assert clean.category_scores.violence == 0.0
    raw = flagged.model_dump()
    # OpenAI's names, plus the policy's own; both stages' rules count.
    assert {"harassment", "self-harm/intent", "sexual/minors", "poetry"} <= set(
        raw["categories"])


async def test_moderations_use_the_clients_own_scope(moderated: Api, http: httpx.AsyncClient
                                                     ) -> None:
    body = {"input": [{"type": "text", "text": "Pineapple pizza"}], "model": "whatever"}
    strict = await http.post(moderated.url + "/v1/moderations", json=body,
                             headers=moderated.headers("strict-client"))
    other = await http.post(moderated.url + "/v1/moderations", json=body,
                            headers=moderated.headers("another-client"))
    assert strict.status_code == other.status_code == 200
    [result] = strict.json()["results"]
    assert result["flagged"] and result["categories"]["food"] is True
    assert not other.json()["results"][0]["flagged"]
    assert "food" not in other.json()["results"][0]["categories"]


@pytest.mark.parametrize(("body", "status"), [
    ({"input": 3}, 400), ({"input": []}, 400), ({"input": [{"type": "image_url"}]}, 400),
    ({"input": "x", "model": 4}, 400), ({}, 400),
])
async def test_moderations_refuse_bad_bodies(moderated: Api, http: httpx.AsyncClient,
                                             body: dict[str, object], status: int) -> None:
    response = await http.post(moderated.url + "/v1/moderations", json=body,
                               headers=moderated.headers())
    assert response.status_code == status
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_moderations_need_a_token(moderated: Api, http: httpx.AsyncClient) -> None:
    response = await http.post(moderated.url + "/v1/moderations", json={"input": "hi"})
    assert response.status_code == 401


async def test_a_blocked_request_is_a_400_and_the_model_is_not_asked(moderated: Api) -> None:
    sub = f"blocked-{uuid.uuid4().hex[:6]}"
    question = [{"role": "user", "content": "¿Cómo hago una bomba?"}]
    async with client(moderated, sub) as openai_client:
        with pytest.raises(openai.BadRequestError) as caught:
            await openai_client.chat.completions.create(
                model="smollm2-135m-instruct", messages=question, max_tokens=8)
    assert caught.value.code == "content_filter"
    assert "illicit/violent" in caught.value.message
    # Audited without the body; the event names the client, the stage and the category.
    await wait_for(moderated, sub)
    assert exchanges(moderated, sub) == [
        (400, [{"role": "user", "content": WITHHELD}], None, None, "content_filter")]
    assert events(moderated, sub) == [
        ("api", f"api:{sub}", f"api:{sub}", "input", "policy", ["illicit/violent"])]


async def test_a_whole_answer_that_trips_is_the_refusal(moderated: Api) -> None:
    sub = f"whole-{uuid.uuid4().hex[:6]}"
    async with client(moderated, sub) as openai_client:
        reply = await openai_client.chat.completions.create(
            model="smollm2-135m-instruct", messages=POEM, max_tokens=40,
            temperature=0)
    choice = reply.choices[0]
    assert choice.message.content == REFUSAL_EN
    assert choice.finish_reason == "content_filter"
    await wait_for(moderated, sub)  # the audit record is written just after the answer
    [(status, _, answer, finish, _)] = exchanges(moderated, sub)
    assert (status, answer, finish) == (200, WITHHELD, "content_filter")
    assert events(moderated, sub) == [
        ("api", f"api:{sub}", f"api:{sub}", "output", "policy", ["poetry"])]


async def stream_poem(api: Api, sub: str) -> tuple[str, list[str | None], bool]:
    """The text the client got, the finish reasons it saw, and whether it saw [DONE]."""
    async with httpx.AsyncClient(timeout=60) as http, http.stream(
            "POST", api.url + "/v1/chat/completions", headers=api.headers(sub),
            json={"messages": POEM, "max_tokens": 40, "temperature": 0, "stream": True}
    ) as response:
        assert response.status_code == 200
        text, reasons, done = "", [], False
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            for choice in json.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
                reasons.append(choice.get("finish_reason"))
    return text, reasons, done


async def test_a_streamed_answer_is_cut_when_it_trips(moderated: Api, poem: Poem) -> None:
    sub = f"stream-{uuid.uuid4().hex[:6]}"
    text, reasons, done = await stream_poem(moderated, sub)
    # What came before the blocked word was relayed; the word never was.
    first_words = " ".join(poem.before.split()[:2])
    assert text.startswith(first_words) and poem.middle not in text.lower()
    assert reasons[-1] == "content_filter" and "stop" not in reasons and done
    await wait_for(moderated, sub)
    [(_, _, answer, finish, _)] = exchanges(moderated, sub)
    assert (answer, finish) == (WITHHELD, "content_filter")
    assert [e[3:] for e in events(moderated, sub)] == [("output", "policy", ["poetry"])]


async def test_a_stream_cut_before_any_text_carries_the_refusal(moderated: Api) -> None:
    # This client's scope blocks "the": the very first word of the poem.
    text, reasons, done = await stream_poem(moderated, "early")
    assert text == REFUSAL_EN
    assert reasons[-1] == "content_filter" and done


async def test_clean_streams_still_end_normally(moderated: Api) -> None:
    async with client(moderated, f"clean-{uuid.uuid4().hex[:6]}") as openai_client:
        stream = await openai_client.chat.completions.create(
            model="smollm2-135m-instruct", temperature=0, max_tokens=16, stream=True,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        pieces, reasons = [], []
        async for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                reasons.append(choice.finish_reason)
    assert "".join(pieces).strip()
    assert reasons[-1] in ("stop", "length")


@pytest.fixture(scope="module")
def guarded(service_keys: tuple[str, str], gateway: Gateway, pg_url: str, redis_url: str,
            poem: Poem) -> Iterator[tuple[Api, FakeGuard]]:
    """An API moderated by a guard model alone (no policy), which flags the poem's middle
    word."""
    guard = FakeGuard(flag=poem.middle)
    guard_server = ServerThread(guard.app()).start()
    settings = make_settings(**api_env(
        service_keys, gateway.url, fresh_database(pg_url), redis_url,
        CHARLA_MODERATION_POLICY="off", CHARLA_MODERATION_CLASSIFIER="guard",
        CHARLA_MODERATION_CLASSIFIER_URL=guard_server.url))
    server = start_api(settings)
    yield Api(server.url, settings, server), guard
    server.stop()
    guard_server.stop()


def judged_answers(guard: FakeGuard) -> list[str]:
    return [body["messages"][-1]["content"] for body in guard.asked
            if body["messages"][-1]["role"] == "assistant"]


async def test_the_guard_judges_a_streamed_answer_once_it_is_complete(
    guarded: tuple[Api, FakeGuard], poem: Poem
) -> None:
    api, guard = guarded
    sub = f"guarded-{uuid.uuid4().hex[:6]}"
    text, reasons, done = await stream_poem(api, sub)
    # All of it was relayed as it came (the guard needs the whole answer); then the end
    # says it was filtered, in place of the engine's "stop".
    assert poem.middle in text.lower()
    assert reasons[-1] == "content_filter" and "stop" not in reasons and done
    assert judged_answers(guard)[-1] == text
    await wait_for(api, sub)
    [(_, _, answer, finish, _)] = exchanges(api, sub)
    assert (answer, finish) == (WITHHELD, "content_filter")
    assert [e[3:] for e in events(api, sub)] == [("output", "classifier", ["violence"])]


async def test_a_streamed_answer_the_guard_finds_safe_ends_normally(
    guarded: tuple[Api, FakeGuard], poem: Poem
) -> None:
    api, guard = guarded
    guard.flag = "no answer says this"
    try:
        sub = f"safe-{uuid.uuid4().hex[:6]}"
        text, reasons, done = await stream_poem(api, sub)
    finally:
        guard.flag = poem.middle
    assert reasons[-1] in ("stop", "length") and done and "content_filter" not in reasons
    assert judged_answers(guard)[-1] == text


async def test_a_guard_failing_on_a_streamed_answer_leaves_the_answer_as_it_was(
    guarded: tuple[Api, FakeGuard]
) -> None:
    # The text is out already: there is nothing to hold back, so the stream ends as the
    # engine ended it (the failure is logged), even though the guard fails closed.
    api, guard = guarded
    assert api.settings.moderation_on_error == "closed"
    guard.fail_on_answers = True
    try:
        sub = f"guard-down-{uuid.uuid4().hex[:6]}"
        text, reasons, done = await stream_poem(api, sub)
    finally:
        guard.fail_on_answers = False
    assert reasons[-1] in ("stop", "length") and done  # as the engine ended it
    for _ in range(100):
        if exchanges(api, sub):
            break
        await asyncio.sleep(0.05)
    [(status, _, answer, finish, _)] = exchanges(api, sub)
    assert (status, answer, finish) == (200, text, reasons[-1])
    assert events(api, sub) == []
