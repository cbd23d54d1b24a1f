"""Telegram end to end: webhook with its secret header → queue → worker → the Bot API."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functions.bots import Bots, eventually

EVENTS = Path(__file__).resolve().parents[1] / "events" / "telegram"


def update(name: str = "private_text", text: str | None = None) -> dict[str, Any]:
    """A sample update with a fresh update_id and a private chat of its own."""
    data: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
    data["update_id"] = random.randint(10**8, 10**9)
    chat_id = random.randint(10**9, 2 * 10**9)
    message = data["message"]
    message["chat"]["id"] = chat_id
    message["from"]["id"] = chat_id
    if text is not None:
        message["text"] = text
    return data


def sent_to(bots: Bots, chat_id: int, method: str = "sendMessage") -> list[dict[str, Any]]:
    return [c.json for c in bots.telegram.called(method) if c.json.get("chat_id") == chat_id]


async def done(bots: Bots, upd: dict[str, Any]) -> None:
    await eventually(lambda: [s for s, *_ in bots.job_state("telegram", str(upd["update_id"]))]
                     == ["done"], timeout=60)


async def test_a_private_message_is_answered_with_typing_first(bots: Bots,
                                                               http: httpx.AsyncClient) -> None:
    upd = update(text="Hola, ¿qué tal? 🙂")
    response = await bots.telegram_update(http, upd)
    assert response.status_code == 200
    await done(bots, upd)
    chat = upd["message"]["chat"]["id"]
    [sent] = sent_to(bots, chat)
    assert sent["reply_parameters"]["message_id"] == upd["message"]["message_id"]
    assert sent_to(bots, chat, "sendChatAction")[0]["action"] == "typing"
    final = bots.telegram.messages[(chat, max(m for c, m in bots.telegram.messages if c == chat))]
    assert final.strip() and not final.endswith("…")
    assert bots.turns("telegram", str(chat))[0] == ("user", "Hola, ¿qué tal? 🙂")


async def test_a_document_with_a_caption_is_answered_by_its_caption(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    upd = update("private_document_caption")
    upd["message"]["caption"] = "What is two plus two? The sum is in the file."
    assert (await bots.telegram_update(http, upd)).status_code == 200
    await done(bots, upd)
    chat = upd["message"]["chat"]["id"]
    [sent] = sent_to(bots, chat)
    assert sent["reply_parameters"]["message_id"] == upd["message"]["message_id"]
    assert bots.turns("telegram", str(chat))[0] == (
        "user", "What is two plus two? The sum is in the file.")


async def test_a_long_private_answer_shows_as_a_draft_then_goes_out_once(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    upd = update(text="Write a short poem about the sea.")
    await bots.telegram_update(http, upd)
    await done(bots, upd)
    chat = upd["message"]["chat"]["id"]
    drafts = sent_to(bots, chat, "sendMessageDraft")
    assert drafts and len({d["draft_id"] for d in drafts}) == 1
    [sent] = sent_to(bots, chat)  # one message, sent whole, never edited
    assert not sent_to(bots, chat, "editMessageText")
    # The message goes on from the last draft, or, where the answer looped (a poem's lines
    # coming back), stops at the loop's first turn, short of the last draft.
    last = drafts[-1]["text"].rstrip()
    assert sent["text"].startswith(last) or last.startswith(sent["text"].rstrip()), (
        sent["text"], last)
    assert bots.turns("telegram", str(chat))[-1] == ("assistant", sent["text"])


async def test_a_redelivered_update_gets_one_answer(bots: Bots, http: httpx.AsyncClient) -> None:
    upd = update(text="Say hello.")
    responses = await asyncio.gather(*(bots.telegram_update(http, upd) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    await done(bots, upd)  # one job for the three copies (each queued before it was acknowledged)
    assert len(sent_to(bots, upd["message"]["chat"]["id"])) == 1


@pytest.mark.parametrize("command", ["/start", "/help"])
async def test_start_and_help_are_answered_in_the_webhook_response(
    bots: Bots, http: httpx.AsyncClient, command: str
) -> None:
    upd = update("command_start")
    upd["message"]["text"] = command
    upd["message"]["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
    response = await bots.telegram_update(http, upd)
    assert response.status_code == 200
    body = response.json()
    assert body["method"] == "sendMessage"
    assert body["chat_id"] == upd["message"]["chat"]["id"]
    assert "/reset" in body["text"]


async def test_reset_forgets_the_conversation(bots: Bots, http: httpx.AsyncClient) -> None:
    upd = update(text="Remember the number 7.")
    await bots.telegram_update(http, upd)
    await done(bots, upd)
    chat = upd["message"]["chat"]["id"]
    assert len(bots.turns("telegram", str(chat))) == 2
    reset = update("command_reset")
    reset["message"]["chat"]["id"] = chat
    response = await bots.telegram_update(http, reset)
    assert response.json()["text"].startswith("Done")
    assert bots.turns("telegram", str(chat)) == []


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", "charla-webhook-secret_012345678"])
async def test_a_wrong_or_missing_secret_is_401(bots: Bots, http: httpx.AsyncClient,
                                                secret: str | None) -> None:
    upd = update()
    response = await bots.telegram_update(http, upd, secret=secret)
    assert response.status_code == 401
    assert bots.job_state("telegram", str(upd["update_id"])) == []


async def test_group_messages_not_addressed_to_the_bot_are_ignored(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    upd = update("group_not_addressed")
    response = await bots.telegram_update(http, upd)
    assert response.status_code == 200
    assert bots.job_state("telegram", str(upd["update_id"])) == []  # queued before acknowledged
