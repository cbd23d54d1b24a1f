"""API clients answered from the collections granted to them, with citations they can open.

Real model server (llama-server and the embedding model), real Postgres with pgvector.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from functions.api.auth import client_signer
from functions.knowledge import DONT_KNOW
from shared.db import Database, make_pool
from shared.knowledge.names import RULE
from shared.knowledge.store import KnowledgeStore
from tests.conftest import Api
from tests.functions.api.grants import let_read, let_write
from tests.functions.api.test_documents import POLICY


def bearer(api: Api, sub: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + client_signer(api.settings).sign(
        sub, ttl_s=600, scopes=scopes)}


class Library:
    """A collection holding the travel policy, granted to one client."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.collection = f"travel-{uuid.uuid4().hex[:8]}"
        self.client = f"app-{uuid.uuid4().hex[:6]}"
        self.headers = bearer(api, self.client)

    def ask(self, question: str, **extra: Any) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": question}], "max_tokens": 24,
                "temperature": 0, **extra}


@pytest.fixture
async def library(api: Api, http: httpx.AsyncClient) -> AsyncIterator[Library]:
    lib = Library(api)
    await let_write(api.settings, lib.collection, "ci")
    uploaded = await http.post(
        f"{api.url}/v1/documents?collection={lib.collection}&name=travel.md", content=POLICY,
        headers=bearer(api, "ci", "documents"))
    assert uploaded.status_code == 201, uploaded.text
    assert api.settings.database_url is not None
    db = Database(make_pool(api.settings))
    try:
        await KnowledgeStore(db).grant(lib.collection, f"api:{lib.client}")
        yield lib
    finally:
        await db.close()


QUESTION = "How much can I spend on a hotel night in Madrid?"


async def test_a_granted_client_gets_an_answer_with_citations_it_can_open(
    api: Api, http: httpx.AsyncClient, library: Library
) -> None:
    response = await http.post(f"{api.url}/v1/chat/completions", json=library.ask(QUESTION),
                               headers=library.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"]
    citations = body["citations"]
    assert citations and citations[0]["n"] == 1
    hotels = next(c for c in citations if (c["section"] or "").endswith("Hotels"))
    assert hotels["source"] == "travel.md" and hotels["collection"] == library.collection
    passage = await http.get(api.url + hotels["url"], headers=library.headers)
    assert passage.status_code == 200
    assert "140 euros" in passage.json()["text"]
    # Another client, not granted the collection, cannot open it and is not told it exists.
    stranger = await http.get(api.url + hotels["url"], headers=bearer(api, "stranger"))
    assert stranger.status_code == 404


async def streamed(api: Api, http: httpx.AsyncClient, library: Library,
                   body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks of a streamed answer, after checking that it ends with ``[DONE]``."""
    async with http.stream("POST", f"{api.url}/v1/chat/completions", json=body,
                           headers=library.headers) as response:
        assert response.status_code == 200
        events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_streamed_answer_carries_its_citations_on_its_finishing_chunk(
    api: Api, http: httpx.AsyncClient, library: Library, include_usage: bool
) -> None:
    body = library.ask(QUESTION, stream=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    chunks = await streamed(api, http, library, body)
    cited = [c for c in chunks if "citations" in c]
    assert len(cited) == 1 and cited[0]["choices"][0]["finish_reason"]
    assert cited[0]["citations"][0]["source"] == "travel.md"
    # Every chunk has a choice (clients read chunk.choices[0]) but the usage one, if asked for.
    assert [c for c in chunks if not c["choices"]] == (chunks[-1:] if include_usage else [])
    if include_usage:
        assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_readmes_openai_streaming_example_works_for_a_granted_client(
    api: Api, library: Library
) -> None:
    token = library.headers["Authorization"].removeprefix("Bearer ")
    async with openai.AsyncOpenAI(base_url=api.url + "/v1", api_key=token,
                                  max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="x", stream=True, max_tokens=24, temperature=0,
            messages=[{"role": "user", "content": QUESTION}])
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text


async def test_nothing_relevant_means_i_dont_know_without_asking_the_model(
    api: Api, http: httpx.AsyncClient, library: Library
) -> None:
    response = await http.post(
        f"{api.url}/v1/chat/completions",
        json=library.ask("What is the boiling point of tungsten in kelvin?"),
        headers=library.headers)
    body = response.json()
    assert body["choices"][0]["message"]["content"] == DONT_KNOW.format(
        whom="this client", names=library.collection)
    assert body["citations"] == [] and body["usage"]["completion_tokens"] == 0
    streamed = await http.post(
        f"{api.url}/v1/chat/completions",
        json=library.ask("What is the boiling point of tungsten in kelvin?", stream=True),
        headers=library.headers)
    chunks = [json.loads(line[6:]) for line in streamed.text.splitlines()
              if line.startswith("data: {")]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks)
    assert text.startswith("I don't know") and streamed.text.rstrip().endswith("[DONE]")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["citations"] == []
    assert all("citations" not in c for c in chunks[:-1])


async def test_naming_a_collection_the_client_may_not_read_is_refused(
    api: Api, http: httpx.AsyncClient, library: Library
) -> None:
    response = await http.post(f"{api.url}/v1/chat/completions",
                               json=library.ask(QUESTION, collections=["payroll"]),
                               headers=library.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "collection_not_granted"
    bad = await http.post(f"{api.url}/v1/chat/completions",
                          json=library.ask(QUESTION, collections="payroll"),
                          headers=library.headers)
    assert bad.status_code == 400


async def test_an_empty_collections_list_asks_the_model_alone(
    api: Api, http: httpx.AsyncClient, library: Library
) -> None:
    response = await http.post(f"{api.url}/v1/chat/completions",
                               json=library.ask(QUESTION, collections=[]),
                               headers=library.headers)
    assert response.status_code == 200
    assert "citations" not in response.json()


async def test_clients_see_only_the_collections_granted_to_them(
    api: Api, http: httpx.AsyncClient, library: Library
) -> None:
    mine = (await http.get(f"{api.url}/v1/collections", headers=library.headers)).json()
    assert [c["name"] for c in mine["data"]] == [library.collection]
    assert mine["data"][0]["documents"] == 1 and mine["data"][0]["chunks"] >= 2
    theirs = (await http.get(f"{api.url}/v1/collections",
                             headers=bearer(api, "stranger"))).json()
    assert library.collection not in [c["name"] for c in theirs["data"]]


async def test_an_upload_over_the_size_limit_is_413_and_keeps_nothing(
    api: Api, http: httpx.AsyncClient
) -> None:
    h = bearer(api, "ci", "documents")
    collection = f"big-{uuid.uuid4().hex[:8]}"
    await let_write(api.settings, collection, "ci")
    too_big = b"# Big\n\n" + b"word " * (api.settings.kb_max_upload_bytes // 5 + 1)
    response = await http.post(f"{api.url}/v1/documents?collection={collection}&name=big.md",
                               content=too_big, headers=h)
    assert response.status_code == 413
    # It says how a file that large goes in (on AWS the limit is API Gateway's, issue 22).
    assert f"`charla ingest FILE --collection {collection}`" in (
        response.json()["error"]["message"])
    listed = await http.get(f"{api.url}/v1/documents?collection={collection}", headers=h)
    assert listed.json()["data"] == []


CANTEEN = b"# Canteen\n\n## Hours\n\nThe canteen opens at noon and closes at three.\n"


async def test_a_collection_granted_to_another_client_is_refused_by_name_and_never_searched(
    api: Api, http: httpx.AsyncClient, library: Library
) -> None:
    # Bob reads a collection of his own about something else; the library's travel policy
    # (which answers the question) exists, holds passages, and is granted to its client only.
    bob = Library(api)
    await let_write(api.settings, bob.collection, "ci")
    uploaded = await http.post(f"{api.url}/v1/documents", content=CANTEEN,
                               params={"collection": bob.collection, "name": "canteen.md"},
                               headers=bearer(api, "ci", "documents"))
    assert uploaded.status_code == 201, uploaded.text
    await let_read(api.settings, bob.collection, bob.client)

    ghost = f"ghost-{uuid.uuid4().hex[:6]}"  # no such collection
    answers = {}
    for names in ([library.collection], [bob.collection, library.collection], [ghost]):
        for stream in (False, True):
            response = await http.post(
                f"{api.url}/v1/chat/completions", headers=bob.headers,
                json=bob.ask(QUESTION, collections=names, stream=stream))
            assert response.status_code == 403, response.text
            answers[names[-1], stream] = response.json()["error"]
    error = answers[library.collection, False]
    assert error["code"] == "collection_not_granted" and library.collection in error["message"]
    assert bob.collection not in error["message"]
    # The same refusal whether the collection exists or not.
    error["message"] = error["message"].replace(library.collection, ghost)
    assert error == answers[ghost, False]
    # Named, it is refused even when there is no question to look up.
    system_last = {"messages": [{"role": "system", "content": "Summarise."}], "max_tokens": 4,
                   "collections": [library.collection]}
    refused = await http.post(f"{api.url}/v1/chat/completions", json=system_last,
                              headers=bob.headers)
    assert refused.status_code == 403, refused.text

    # Asked without naming any, Bob's answer comes from his collection alone: nothing there
    # is about hotels, so "I don't know" without the model; the travel policy, which would
    # answer, is not searched.
    response = await http.post(f"{api.url}/v1/chat/completions", json=bob.ask(QUESTION),
                               headers=bob.headers)
    body = response.json()
    assert body["choices"][0]["message"]["content"] == DONT_KNOW.format(
        whom="this client", names=bob.collection)
    assert body["citations"] == []

    # The library's passages do not open for Bob, and say no more than one that never was.
    cited = await http.post(f"{api.url}/v1/chat/completions", json=library.ask(QUESTION),
                            headers=library.headers)
    chunk_id = cited.json()["citations"][0]["chunk_id"]
    refused = await http.get(f"{api.url}/v1/passages/{chunk_id}", headers=bob.headers)
    missing = await http.get(f"{api.url}/v1/passages/{chunk_id + 10**9}", headers=bob.headers)
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"]["message"].replace(str(chunk_id), "N") == \
        missing.json()["error"]["message"].replace(str(chunk_id + 10**9), "N")
    listed = (await http.get(f"{api.url}/v1/collections", headers=bob.headers)).json()
    assert [c["name"] for c in listed["data"]] == [bob.collection]


@pytest.mark.parametrize("name", ["../x", "a;drop table", "x" * 500, "Upper", ""])
async def test_a_bad_collection_name_in_a_chat_request_is_a_400_that_states_the_rule(
    api: Api, http: httpx.AsyncClient, library: Library, name: str
) -> None:
    response = await http.post(f"{api.url}/v1/chat/completions",
                               json=library.ask(QUESTION, collections=[name]),
                               headers=library.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "collections" and RULE in error["message"]
