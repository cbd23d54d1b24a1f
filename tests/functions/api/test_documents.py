"""``/v1/documents``: the knowledge base over HTTP, with the real model server and Postgres."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fpdf import FPDF

from functions.api.auth import client_signer
from tests.conftest import Api

POLICY = b"""# Travel policy

## Trains

Book second class for trips under four hours; first class above that.

## Hotels

Up to 140 euros a night in Madrid and 220 dollars in Boston.
"""


def headers(api: Api, *scopes: str) -> dict[str, str]:
    token = client_signer(api.settings).sign(f"ci-{uuid.uuid4().hex[:6]}", ttl_s=600,
                                             scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


def pdf_bytes(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


async def test_upload_reupload_change_list_and_delete(api: Api, http: httpx.AsyncClient) -> None:
    h = headers(api, "documents")
    collection = f"docs-{uuid.uuid4().hex[:8]}"
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
    h = headers(api, "documents")
    collection = f"docs-{uuid.uuid4().hex[:8]}"
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
