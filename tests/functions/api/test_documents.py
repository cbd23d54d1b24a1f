"""``/v1/documents``: the knowledge base over HTTP, with the real model server and Postgres."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import httpx
import pytest
from fpdf import FPDF

from functions.api.auth import client_signer
from shared.db import Database, make_pool
from shared.knowledge.names import RULE
from shared.knowledge.store import KnowledgeStore, NotGranted
from tests.conftest import Api
from tests.functions.api.grants import let_read, let_write, take_write

POLICY = b"""# Travel policy

## Trains

Book second class for trips under four hours; first class above that.

## Hotels

Up to 140 euros a night in Madrid and 220 dollars in Boston.
"""


def headers(api: Api, *scopes: str, sub: str | None = None) -> dict[str, str]:
    token = client_signer(api.settings).sign(sub or f"ci-{uuid.uuid4().hex[:6]}", ttl_s=600,
                                             scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


def new_client() -> str:
    return f"ci-{uuid.uuid4().hex[:6]}"


def pdf_bytes(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


async def test_upload_reupload_change_list_and_delete(api: Api, http: httpx.AsyncClient) -> None:
    client = new_client()
    h = headers(api, "documents", sub=client)
    collection = f"docs-{uuid.uuid4().hex[:8]}"
    await let_write(api.settings, collection, client)
    url = f"{api.url}/v1/documents?collection={collection}&name=travel.md"
    first = await http.post(url, content=POLICY, headers=h)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "added" and body["chunks"] >= 2
    same = await http.post(url, content=POLICY, headers=h)
    assert same.status_code == 200 and same.json()["status"] == "unchanged"
    assert same.json()["id"] == body["id"]
    changed = await http.post(url, content=POLICY + b"\n## Taxis\n\nAllowed after 22:00.\n",
                              headers=h)
    assert changed.json()["status"] == "updated"
    pdf = await http.post(f"{api.url}/v1/documents?collection={collection}&name=guide.pdf",
                          content=pdf_bytes("Guests sign in at reception on floor 2."),
                          headers=h)
    assert pdf.status_code == 201, pdf.text
    listed = await http.get(f"{api.url}/v1/documents?collection={collection}", headers=h)
    assert sorted(d["name"] for d in listed.json()["data"]) == ["guide.pdf", "travel.md"]
    gone = await http.delete(f"{api.url}/v1/documents/{body['id']}", headers=h)
    assert gone.status_code == 204
    again = await http.delete(f"{api.url}/v1/documents/{body['id']}", headers=h)
    assert again.status_code == 404


@pytest.mark.parametrize("name,content,status,code", [
    ("tool.exe", b"MZ\x90\x00", 415, "unsupported_media_type"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", 422, "unreadable_document"),
    ("empty.md", b"", 400, None),
])
async def test_bad_files_get_a_clear_error_and_nothing_is_kept(
    api: Api, http: httpx.AsyncClient, name: str, content: bytes, status: int, code: str | None
) -> None:
    client = new_client()
    h = headers(api, "documents", sub=client)
    collection = f"docs-{uuid.uuid4().hex[:8]}"
    await let_write(api.settings, collection, client)
    response = await http.post(f"{api.url}/v1/documents?collection={collection}&name={name}",
                               content=content, headers=h)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and (code is None or error["code"] == code)
    listed = await http.get(f"{api.url}/v1/documents?collection={collection}", headers=h)
    assert listed.json()["data"] == []


async def test_writing_needs_the_documents_scope(api: Api, http: httpx.AsyncClient) -> None:
    response = await http.post(f"{api.url}/v1/documents?collection=x&name=a.md",
                               content=POLICY, headers=headers(api))
    assert response.status_code == 403
    assert "--scope documents" in response.json()["error"]["message"]
    assert (await http.post(f"{api.url}/v1/documents?collection=x&name=a.md",
                            content=POLICY)).status_code == 401


async def test_missing_parameters_and_paths_as_names_are_400(api: Api,
                                                             http: httpx.AsyncClient) -> None:
    h = headers(api, "documents")
    assert (await http.post(f"{api.url}/v1/documents?name=a.md", content=POLICY,
                            headers=h)).status_code == 400
    assert (await http.post(f"{api.url}/v1/documents?collection=x&name=../etc/passwd.md",
                            content=POLICY, headers=h)).status_code == 400


@dataclass(frozen=True)
class Tenant:
    """A client with a collection of its own that exists and holds a document."""

    client: str
    collection: str
    document_id: int


@pytest.fixture
async def alice(api: Api, http: httpx.AsyncClient) -> Tenant:
    client, collection = f"alice-{uuid.uuid4().hex[:6]}", f"alicekb-{uuid.uuid4().hex[:6]}"
    await let_write(api.settings, collection, client)
    uploaded = await http.post(f"{api.url}/v1/documents", content=POLICY,
                               params={"collection": collection, "name": "travel.md"},
                               headers=headers(api, "documents", sub=client))
    assert uploaded.status_code == 201, uploaded.text
    return Tenant(client, collection, uploaded.json()["id"])


async def names_in(api: Api, http: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    """The documents of ``tenant``'s collection, as its owner lists them."""
    listed = await http.get(f"{api.url}/v1/documents", params={"collection": tenant.collection},
                            headers=headers(api, "documents", sub=tenant.client))
    assert listed.status_code == 200, listed.text
    return sorted(d["name"] for d in listed.json()["data"])


def indistinguishable(refused: httpx.Response, missing: httpx.Response, real: str,
                      ghost: str) -> None:
    """``refused`` (about something that exists: ``real``) says no more than ``missing``
    (about something that does not: ``ghost``)."""
    assert refused.status_code == missing.status_code
    error = refused.json()["error"]
    error["message"] = error["message"].replace(real, ghost)
    assert error == missing.json()["error"]


INJECTED = b"# Hotels\n\nUp to 5000 euros a night, anywhere, in any class.\n"


async def test_another_clients_collection_can_be_neither_listed_nor_written_to_nor_deleted_from(
    api: Api, http: httpx.AsyncClient, alice: Tenant
) -> None:
    bob = headers(api, "documents", sub=new_client())
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"  # no such collection

    def docs(collection: str, name: str | None = None) -> dict[str, str]:
        return {"collection": collection, **({"name": name} if name else {})}

    listed = await http.get(f"{api.url}/v1/documents", params=docs(alice.collection),
                            headers=bob)
    assert listed.status_code == 403, listed.text
    assert listed.json()["error"]["code"] == "collection_not_granted"
    indistinguishable(listed, await http.get(f"{api.url}/v1/documents", params=docs(ghost),
                                             headers=bob), alice.collection, ghost)
    everything = await http.get(f"{api.url}/v1/documents", headers=bob)
    assert everything.status_code == 200
    assert alice.collection not in {d["collection"] for d in everything.json()["data"]}

    injected = await http.post(f"{api.url}/v1/documents", content=INJECTED, headers=bob,
                               params=docs(alice.collection, "injected.md"))
    assert injected.status_code == 403, injected.text
    assert injected.json()["error"]["code"] == "collection_not_granted"
    indistinguishable(injected, await http.post(
        f"{api.url}/v1/documents", content=INJECTED, headers=bob,
        params=docs(ghost, "injected.md")), alice.collection, ghost)
    # The very bytes of Alice's document, under its name: "unchanged" would confirm both.
    copied = await http.post(f"{api.url}/v1/documents", content=POLICY, headers=bob,
                             params=docs(alice.collection, "travel.md"))
    assert copied.status_code == 403, copied.text

    deleted = await http.delete(f"{api.url}/v1/documents/{alice.document_id}", headers=bob)
    assert deleted.status_code == 404
    nowhere = alice.document_id + 10**9
    indistinguishable(deleted, await http.delete(f"{api.url}/v1/documents/{nowhere}",
                                                 headers=bob),
                      str(alice.document_id), str(nowhere))
    # Alice's collection is as she left it.
    assert await names_in(api, http, alice) == ["travel.md"]


async def test_a_read_grant_lists_and_only_a_write_grant_uploads_and_deletes(
    api: Api, http: httpx.AsyncClient, alice: Tenant
) -> None:
    bob_client = new_client()
    bob = headers(api, "documents", sub=bob_client)
    upload = {"collection": alice.collection, "name": "notes.md"}
    await let_read(api.settings, alice.collection, bob_client)
    listed = await http.get(f"{api.url}/v1/documents", params={"collection": alice.collection},
                            headers=bob)
    assert [d["name"] for d in listed.json()["data"]] == ["travel.md"]
    everything = await http.get(f"{api.url}/v1/documents", headers=bob)
    assert [d["id"] for d in everything.json()["data"]] == [alice.document_id]
    assert (await http.post(f"{api.url}/v1/documents", params=upload, content=INJECTED,
                            headers=bob)).status_code == 403
    copied = await http.post(f"{api.url}/v1/documents", content=POLICY, headers=bob,
                             params={"collection": alice.collection, "name": "travel.md"})
    assert copied.status_code == 403, copied.text  # not "unchanged": reading is not writing
    assert (await http.delete(f"{api.url}/v1/documents/{alice.document_id}",
                              headers=bob)).status_code == 404

    await let_write(api.settings, alice.collection, bob_client)
    added = await http.post(f"{api.url}/v1/documents", params=upload, content=INJECTED,
                            headers=bob)
    assert added.status_code == 201, added.text
    assert await names_in(api, http, alice) == ["notes.md", "travel.md"]
    assert (await http.delete(f"{api.url}/v1/documents/{added.json()['id']}",
                              headers=bob)).status_code == 204

    await take_write(api.settings, alice.collection, bob_client)
    assert (await http.post(f"{api.url}/v1/documents", params=upload, content=INJECTED,
                            headers=bob)).status_code == 403
    assert (await http.get(f"{api.url}/v1/documents", params={"collection": alice.collection},
                           headers=bob)).status_code == 200
    assert await names_in(api, http, alice) == ["travel.md"]


async def test_an_upload_revoked_while_it_is_embedded_is_refused_and_keeps_nothing(
    api: Api, http: httpx.AsyncClient, alice: Tenant
) -> None:
    # The grant is checked again in the transaction that stores the document: the store is
    # asked directly, as the route would after embedding, with the grant already gone.
    assert api.settings.database_url is not None
    db = Database(make_pool(api.settings))
    try:
        store = KnowledgeStore(db)
        collection = await store.writable(alice.collection, [f"api:{alice.client}"])
        assert collection is not None
        await store.revoke(alice.collection, f"api:{alice.client}")
        with pytest.raises(NotGranted):
            await store.put_document(collection, source="late.md", title=None,
                                     media_type="text/markdown", content_hash="x", size=1,
                                     chunks=[], writers=[f"api:{alice.client}"])
        assert [d.source for d in await store.documents(alice.collection)] == ["travel.md"]
    finally:
        await db.close()


BAD_NAMES = ["../x", "a;drop table", "x" * 500, "Upper", "a b", "-x", "x" * 64, "a\n", "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_bad_collection_name_is_a_400_that_states_the_rule(
    api: Api, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    h = headers(api, "documents")
    caplog.set_level(logging.ERROR)
    for response in (
            await http.post(f"{api.url}/v1/documents", content=POLICY, headers=h,
                            params={"collection": name, "name": "a.md"}),
            await http.get(f"{api.url}/v1/documents", params={"collection": name}, headers=h)):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "collection" and RULE in error["message"]
        assert error["type"] == "invalid_request_error"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_ids_beyond_the_databases_range_are_simply_not_found(
    api: Api, http: httpx.AsyncClient
) -> None:
    h = headers(api, "documents")
    huge = 2**64
    assert (await http.delete(f"{api.url}/v1/documents/{huge}", headers=h)).status_code == 404
    assert (await http.get(f"{api.url}/v1/passages/{huge}", headers=h)).status_code == 404
