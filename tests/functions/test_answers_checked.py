"""An answer drawn from the documents says what they say, through the API and the bots alike.

Real functions app, worker, model server and Postgres; between them and the model server, a
proxy on loopback that puts a chosen answer in place of the model's (what a small model may
write: the right citation over a wrong figure), so that each case is decided by the check and
not by the model's mood. Slack is the fake on loopback.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions.api.auth import client_signer
from functions.knowledge import Knowledge
from functions.model_client import ModelClient
from shared.db import Database, make_pool
from tests.conftest import Gateway, ServerThread, fresh_database
from tests.fakes.slack_api import TEAM_ID
from tests.functions.bots import Bots, start_bots
from tests.functions.test_bots_slack import answered, mention

VACATIONS = b"""# Vacations

## Lisbon

Vacation requests go through the HR portal. Every employee of the Lisbon office has 27 days of
paid vacation per year. Unused days expire at the end of March.
"""
SENTENCE = ("Every employee of the Lisbon office has 27 days of paid vacation per year.")
QUESTION = "How many vacation days do Lisbon employees get?"
WRONG = "[1] In 2022, Lisbon employees have 24 days of paid vacation per year."
RIGHT = "Every employee of the Lisbon office has 27 days of paid vacation per year [1]."


class Rewriter:
    """Forwards to the model server; chat answers come back carrying ``answer`` instead of
    the model's text (whole, or streamed a word per event, the model's own pieces emptied)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.answer: str | None = None
        self.chats = 0  # chat completions asked of the model server
        self.sent: dict[str, Any] = {}  # the last chat completion's body

    def _rewritten(self, raw: bytes) -> bytes:
        assert self.answer is not None
        if not raw.startswith(b"data:"):
            body = json.loads(raw)
            body["choices"][0]["message"]["content"] = self.answer
            return json.dumps(body).encode()
        events, placed = [], False
        for event in raw.split(b"\n\n"):
            payload = event.removeprefix(b"data: ")
            chunk = json.loads(payload) if payload.startswith(b"{") else None
            delta = ((chunk.get("choices") or [{}])[0].get("delta") or {}) if chunk else {}
            if chunk is None or "content" not in delta:
                events.append(event)
                continue
            if not placed:  # the answer, a word per event, as a model writes it
                for word in re.findall(r"\S+\s*", self.answer):
                    delta["content"] = word
                    events.append(b"data: " + json.dumps(chunk).encode())
                placed = True
            delta["content"] = ""
            events.append(b"data: " + json.dumps(chunk).encode())
        return b"\n\n".join(events)

    def app(self) -> Starlette:
        async def forward(request: Request) -> Response:
            raw = await request.body()
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("authorization", "content-type")}
            if request.url.path.endswith("/chat/completions"):
                self.chats += 1
                self.sent = json.loads(raw)
            async with httpx.AsyncClient(timeout=120) as client:
                upstream = await client.request(request.method, self.target + request.url.path,
                                                content=raw, headers=headers)
            content = upstream.content
            if (self.answer is not None and request.url.path.endswith("/chat/completions")
                    and upstream.status_code == 200):
                content = self._rewritten(content)
            return Response(content, upstream.status_code,
                            media_type=upstream.headers.get("content-type"))

        return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


class Stack:
    def __init__(self, bots: Bots, rewriter: Rewriter, channel: str, client: str) -> None:
        self.bots, self.rewriter, self.channel, self.client = bots, rewriter, channel, client
        self.headers = {"Authorization": "Bearer " + client_signer(bots.settings).sign(
            client, ttl_s=600)}


@pytest.fixture(scope="module")
def rewritten(service_keys: tuple[str, str], gateway: Gateway, pg_url: str,
              redis_url: str) -> Iterator[tuple[Bots, Rewriter]]:
    rewriter = Rewriter(gateway.url)
    proxy = ServerThread(rewriter.app()).start()
    bots = start_bots(service_keys, proxy.url, fresh_database(pg_url), redis_url,
                      CHARLA_BOT_MAX_TOKENS="24")
    yield bots, rewriter
    bots.stop()
    proxy.stop()


@pytest.fixture(scope="module")
async def stack(rewritten: tuple[Bots, Rewriter]) -> AsyncIterator[Stack]:
    """The vacation policy, granted to one API client and one Slack channel."""
    bots, rewriter = rewritten
    db = Database(make_pool(bots.settings))
    model = ModelClient(bots.settings)
    try:
        kb = Knowledge(db, model)
        name = f"vacations-{uuid.uuid4().hex[:6]}"
        ingestor = kb.ingestor("test:setup")
        collection = await ingestor.collection(name)
        [outcome] = await ingestor.ingest(collection, [("vacations.md", VACATIONS)])
        assert outcome.status == "added"
        channel, client = f"C{uuid.uuid4().hex[:9].upper()}", f"app-{uuid.uuid4().hex[:6]}"
        await kb.store.grant(name, f"slack:{TEAM_ID}:{channel}")
        await kb.store.grant(name, f"api:{client}")
    finally:
        await model.close()
        await db.close()
    yield Stack(bots, rewriter, channel, client)


def ask(stream: bool = False, question: str = QUESTION) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}], "max_tokens": 24,
            "stream": stream}


async def api_answer(stack: Stack, http: httpx.AsyncClient,
                     question: str = QUESTION) -> dict[str, Any]:
    response = await http.post(stack.bots.url + "/v1/chat/completions",
                               json=ask(question=question), headers=stack.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def api_stream(stack: Stack, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    async with http.stream("POST", stack.bots.url + "/v1/chat/completions",
                           json=ask(stream=True), headers=stack.headers) as response:
        assert response.status_code == 200
        events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0].get("delta") or {}).get("content") or ""
                   for c in chunks if c["choices"])


async def bot_answer(stack: Stack, http: httpx.AsyncClient, question: str = QUESTION) -> str:
    body = mention(question, channel=stack.channel)
    assert (await stack.bots.slack_event(http, body)).status_code == 200
    [answer] = await answered(stack.bots, body)
    return answer


async def test_an_answer_with_a_figure_its_passage_does_not_state_is_replaced_by_a_quote(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer = WRONG
    whole = await api_answer(stack, http)
    shown = whole["choices"][0]["message"]["content"]
    assert shown.startswith("According to vacations.md") and f'"{SENTENCE}"' in shown, shown
    assert "24" not in shown and "2022" not in shown
    assert whole["fact_check"] == {"replaced": True, "unsupported": ["2022", "24"]}
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["citations"][0]["source"] == "vacations.md"

    chunks = await api_stream(stack, http)
    assert streamed_text(chunks) == shown  # the stream shows none of the model's text
    [last] = [c for c in chunks if "fact_check" in c]
    assert last is chunks[-1] and last["citations"][0]["source"] == "vacations.md"
    assert last["choices"][0]["finish_reason"] == "stop"

    # The bot decides the same, and shows the same quote above its sources.
    assert (await bot_answer(stack, http)).startswith(shown + "\n\n")


async def test_an_answer_that_says_what_its_passage_says_is_kept_word_for_word(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer = RIGHT
    whole = await api_answer(stack, http)
    assert whole["choices"][0]["message"]["content"] == RIGHT
    assert "fact_check" not in whole
    chunks = await api_stream(stack, http)
    assert streamed_text(chunks) == RIGHT
    assert not [c for c in chunks if "fact_check" in c]
    shown = await bot_answer(stack, http)
    assert shown.startswith(RIGHT + "\n\n")
    # Each source shows the sentence that supports the answer, on the API and under the bot's.
    [cited] = [c for c in chunks if "citations" in c]
    for citations in (whole["citations"], cited["citations"]):
        assert citations[0]["quote"] == SENTENCE
        for citation in citations:
            passage = await http.get(stack.bots.url + citation["url"], headers=stack.headers)
            text = " ".join(passage.json()["text"].split())
            assert citation["quote"] is None or citation["quote"].rstrip("…") in text
    assert f'vacations.md › Vacations › Lisbon: "{SENTENCE}"' in shown


async def test_the_sentences_checked_before_a_wrong_one_stay_and_the_quote_follows(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    stack.rewriter.answer = RIGHT + " Unused days expire at the end of June."
    chunks = await api_stream(stack, http)
    text = streamed_text(chunks)
    kept, _, quote = text.partition("\n\n")
    assert kept.strip() == RIGHT and quote.startswith("According to vacations.md"), text
    assert "June" not in text
    assert next(c for c in chunks if "fact_check" in c)["fact_check"]["unsupported"] == ["June"]
    # One pipeline: a whole answer and a bot's show the same (the stream's space after the
    # kept sentence was sent before the next one failed).
    same = f"{kept.strip()}\n\n{quote}"
    assert (await api_answer(stack, http))["choices"][0]["message"]["content"] == same
    assert (await bot_answer(stack, http)).startswith(same + "\n\n")


async def test_an_answer_that_loops_ends_after_its_first_turn(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    turn = "I can help with that."
    stack.rewriter.answer = f"{turn} " * 8
    whole = await api_answer(stack, http)
    assert whole["choices"][0]["message"]["content"] == turn
    chunks = await api_stream(stack, http)
    # The loop is seen at its third turn: the stream ends there, with what was sent.
    assert 1 <= streamed_text(chunks).count(turn) <= 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["citations"][0]["source"] == "vacations.md"
    # A bot's message is edited to the first turn.
    assert (await bot_answer(stack, http)).startswith(turn + "\n\n")


@pytest.mark.parametrize(("start", "kept"), [
    ("Lisbon employees get 27 days", True),  # what the passage says: kept up to the loop
    ("Lisbon employees get 24 days", False),  # what it does not: the quote instead
])
async def test_a_loop_inside_the_first_sentence_is_checked_where_it_is_cut(
    stack: Stack, http: httpx.AsyncClient, start: str, kept: bool
) -> None:
    """The loop is seen before the sentence ends, so before the fact check has read it: the
    part kept is checked then, and every door shows the same."""
    stack.rewriter.answer = start + " of the web" * 12
    shown = (await api_answer(stack, http))["choices"][0]["message"]["content"]
    streamed = streamed_text(await api_stream(stack, http))
    bot = await bot_answer(stack, http)
    if kept:
        assert shown.startswith(start) and streamed.startswith(start) and bot.startswith(start)
    else:
        assert shown.startswith("According to vacations.md") and "24" not in shown
        assert streamed == shown and bot.startswith(shown + "\n\n")


async def test_a_question_its_passages_do_not_answer_gets_i_dont_know_without_the_model(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """The Lisbon policy is found for a Madrid question (it is close), but it does not
    answer it: "I don't know" with the closest source, from the API and the bot alike, and
    the model is not asked (it would give Lisbon's figure)."""
    stack.rewriter.answer = RIGHT
    before = stack.rewriter.chats
    madrid = "How many vacation days do Madrid employees get?"
    whole = await api_answer(stack, http, madrid)
    shown = whole["choices"][0]["message"]["content"]
    assert shown == ("I don't know: the documents don't say. The closest sources: "
                     "vacations.md › Vacations › Lisbon.")
    assert [c["source"] for c in whole["citations"]] == ["vacations.md"]
    assert (await bot_answer(stack, http, madrid)).startswith(shown)
    assert stack.rewriter.chats == before
    # The question it answers is still answered, by the model.
    assert (await api_answer(stack, http))["choices"][0]["message"]["content"] == RIGHT
    assert stack.rewriter.chats == before + 1


async def test_the_model_is_asked_with_the_passages_and_the_answers_start(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """One layout for every door: the passages and the question in one user message, with
    what to answer it with in its language; the answer started with the words of the best
    sentence before its figure, at temperature 0 (docs/benchmarks.md, "How a small model is
    asked"). The audit log keeps the question as the client sent it."""
    stack.rewriter.answer = None  # the model's own answer
    body = await api_answer(stack, http)
    sent = stack.rewriter.sent
    *_, asked, started = sent["messages"]
    assert asked["role"] == "user" and SENTENCE in asked["content"]
    assert asked["content"].endswith(f"Question: {QUESTION}\nAnswer the question from the "
                                     "passages only, in one or two sentences, with the exact "
                                     "figure, name or words the passage uses.")
    assert started == {"role": "assistant", "content": "Every employee of the Lisbon office has"}
    assert sent["temperature"] == 0
    assert body["choices"][0]["message"]["content"].startswith(started["content"])
    # The bot asks the same way, in Spanish for a question in Spanish.
    spanish = "¿Cuántos días de vacaciones tienen los empleados de Lisboa?"
    await bot_answer(stack, http, spanish)
    *_, asked, started = stack.rewriter.sent["messages"]
    assert f"Pregunta: {spanish}\nResponde a la pregunta solo con" in asked["content"]
    assert started["role"] == "assistant" and SENTENCE.startswith(started["content"])
