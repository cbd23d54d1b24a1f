"""Personal data never reaches the audit log, and, when asked, not the model server either.

Real functions app, real model server (reached through a recording proxy on loopback, to see
what was sent to it), real Postgres; the audit rows are opened with the stack's data keys.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions.api.auth import client_signer
from tests.conftest import (
    Api,
    Gateway,
    ServerThread,
    api_env,
    make_settings,
    start_api,
)
from tests.functions.api.grants import let_write
from tests.functions.api.test_api import wait_for_rows

PERSONAL = ("Soy Ana, mi correo es ana.ruiz@example.com y mi tarjeta 4111 1111 1111 1111; "
            "llámame al 612 345 678.")
FOUND = ("ana.ruiz@example.com", "4111 1111 1111 1111", "612 345 678")


def _answer_with(raw: bytes, text: str) -> bytes:
    """A chat answer (whole, or a stream's events) whose first text is ``text``."""
    if not raw.startswith(b"data:"):
        body = json.loads(raw)
        body["choices"][0]["message"]["content"] = text
        return json.dumps(body).encode()
    events, done = [], False
    for event in raw.split(b"\n\n"):
        payload = event.removeprefix(b"data: ")
        if not done and payload.startswith(b"{"):
            chunk = json.loads(payload)
            delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
            if delta.get("content"):
                delta["content"], done = text, True
                event = b"data: " + json.dumps(chunk).encode()
        events.append(event)
    return b"\n\n".join(events)


class Recorder:
    """Forwards to the model server and keeps every JSON body it was sent; with ``answer``,
    the model's answers start with that text instead (personal data planted in an answer)."""

    def __init__(self, target: str, answer: str | None = None) -> None:
        self.target = target
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def forward(request: Request) -> Response:
            raw = await request.body()
            if raw:
                self.bodies.append(json.loads(raw))
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("authorization", "content-type")}
            async with httpx.AsyncClient(timeout=60) as client:
                upstream = await client.request(request.method, self.target + request.url.path,
                                                content=raw, headers=headers)
            content = upstream.content
            if (self.answer is not None and request.url.path.endswith("/chat/completions")
                    and upstream.status_code == 200):
                content = _answer_with(content, self.answer)
            return Response(content, upstream.status_code,
                            media_type=upstream.headers.get("content-type"))

        return Starlette(routes=[Route("/{path:path}", forward,
                                       methods=["GET", "POST"])])


@pytest.fixture
def recorded_api(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
                 redis_url: str) -> Iterator[tuple[Api, Recorder]]:
    recorder = Recorder(gateway.url)
    proxy = ServerThread(recorder.app()).start()
    settings = make_settings(**api_env(service_keys, proxy.url, pg_url, redis_url,
                                       CHARLA_REDACT_MODEL_INPUT="on"))
    server = start_api(settings)
    yield Api(server.url, settings, server), recorder
    server.stop()
    proxy.stop()


async def test_the_audit_log_keeps_placeholders_not_personal_data(
    api: Api, http: httpx.AsyncClient
) -> None:
    sub = f"audit-{uuid.uuid4().hex[:6]}"
    response = await http.post(api.url + "/v1/chat/completions", headers=api.headers(sub),
                               json={"messages": [{"role": "user", "content": PERSONAL}],
                                     "max_tokens": 4})
    assert response.status_code == 200
    [row] = await wait_for_rows(api, sub, 1)
    stored = json.dumps(row["request_messages"], ensure_ascii=False)
    assert all(value not in stored for value in FOUND), stored
    assert "[EMAIL]" in stored and "[CARD]" in stored and "[PHONE]" in stored
    assert "Soy Ana" in stored  # the rest of the text is kept


async def test_with_the_setting_on_the_model_server_sees_no_personal_data(
    recorded_api: tuple[Api, Recorder], http: httpx.AsyncClient
) -> None:
    api, recorder = recorded_api
    response = await http.post(api.url + "/v1/chat/completions", headers=api.headers(),
                               json={"messages": [{"role": "user", "content": PERSONAL}],
                                     "max_tokens": 4})
    assert response.status_code == 200, response.text
    chats = [b for b in recorder.bodies if "messages" in b]
    assert chats, "the request went through the recording proxy"
    sent = json.dumps(chats, ensure_ascii=False)
    assert all(value not in sent for value in FOUND), sent
    assert "[EMAIL]" in sent


async def test_with_the_setting_on_the_passages_sent_to_the_model_are_redacted_too(
    recorded_api: tuple[Api, Recorder], http: httpx.AsyncClient
) -> None:
    """The API lays out passages as the bots do (functions/pipeline.py): the model server
    sees them redacted, the asker's citations and quotes read the document as it is."""
    api, recorder = recorded_api
    collection, client = f"staff-{uuid.uuid4().hex[:8]}", f"app-{uuid.uuid4().hex[:6]}"
    await let_write(api.settings, collection, client)
    doc = ("# Contacts\n\nThe on-call engineer for the Quito lab is Ana Ruiz: her phone is "
           "612 345 678 and her mail ana.ruiz@example.com.\n")
    writer = {"Authorization": "Bearer " + client_signer(api.settings).sign(
        client, ttl_s=600, scopes=("documents",))}
    uploaded = await http.post(f"{api.url}/v1/documents?collection={collection}&name=oncall.md",
                               content=doc.encode(), headers=writer)
    assert uploaded.status_code == 201, uploaded.text
    response = await http.post(
        api.url + "/v1/chat/completions", headers=api.headers(client),
        json={"messages": [{"role": "user",
                            "content": "Who is the on-call engineer for the Quito lab?"}],
              "max_tokens": 4})
    assert response.status_code == 200, response.text
    assert response.json()["citations"][0]["source"] == "oncall.md"
    sent = json.dumps([b for b in recorder.bodies if "messages" in b], ensure_ascii=False)
    assert "Quito lab" in sent  # the passage went to the model,
    assert "612 345 678" not in sent and "ana.ruiz@example.com" not in sent  # redacted
    assert "[PHONE]" in sent and "[EMAIL]" in sent


@pytest.mark.parametrize("stream", [False, True])
async def test_personal_data_in_the_models_answer_is_redacted_in_the_audit_log(
    service_keys: tuple[str, str], gateway: Gateway, pg_url: str, redis_url: str,
    http: httpx.AsyncClient, stream: bool
) -> None:
    # The answer, not the question, carries the personal data: the model could have read it
    # in a document or made it up.
    proxy = ServerThread(Recorder(gateway.url, answer=PERSONAL).app()).start()
    settings = make_settings(**api_env(service_keys, proxy.url, pg_url, redis_url))
    server = start_api(settings)
    api = Api(server.url, settings, server)
    sub = f"answer-{uuid.uuid4().hex[:6]}"
    try:
        response = await http.post(api.url + "/v1/chat/completions", headers=api.headers(sub),
                                   json={"messages": [{"role": "user", "content": "Hola"}],
                                         "max_tokens": 4, "stream": stream})
        assert response.status_code == 200, response.text
        assert "ana.ruiz@example.com" in response.text  # the client gets the answer as given
        [row] = await wait_for_rows(api, sub, 1)
    finally:
        server.stop()
        proxy.stop()
    answer = str(row["answer"])
    assert all(value not in answer for value in FOUND), answer
    assert "[EMAIL]" in answer and "[CARD]" in answer and "Soy Ana" in answer
