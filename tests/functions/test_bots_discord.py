"""Discord end to end: signed interactions → /discord/interactions → queue → worker → webhook."""

from __future__ import annotations

import json
import random
import secrets
import time
from typing import Any

import httpx
import pytest

from functions.discord.client import DISCORD_EPOCH_MS
from tests.functions.bots import DISCORD_APP, Bots, eventually
from tests.functions.discord.events import event


def snowflake(age_s: float = 0.0) -> str:
    """A fresh Discord id made ``age_s`` seconds ago (its time is in its top bits)."""
    made_ms = int((time.time() - age_s) * 1000) - DISCORD_EPOCH_MS
    return str(made_ms << 22 | random.getrandbits(22))


def interaction(name: str = "ask_guild", question: str | None = None) -> dict[str, Any]:
    """A sample interaction with fresh ids and token, for our application."""
    body = event(name)
    body["id"] = snowflake()
    body["token"] = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(40)
    body["application_id"] = DISCORD_APP
    body["channel_id"] = str(random.randint(10**18, 2 * 10**18))
    if isinstance(body.get("channel"), dict):
        body["channel"]["id"] = body["channel_id"]
    if question is not None:
        body["data"]["options"][0]["value"] = question
    return body


def user_id(body: dict[str, Any]) -> str:
    return str((body.get("member") or {}).get("user", body.get("user"))["id"])


async def test_ping_gets_pong(bots: Bots, http: httpx.AsyncClient) -> None:
    response = await bots.discord_interaction(http, event("ping"))
    assert response.status_code == 200
    assert response.json() == {"type": 1}


async def test_ask_is_deferred_at_once_then_answered(bots: Bots, http: httpx.AsyncClient
                                                     ) -> None:
    body = interaction(question="What colour is grass? 🌱")
    bots.discord.open_interaction(body["token"])
    response = await bots.discord_interaction(http, body)
    assert response.status_code == 200
    assert response.json() == {"type": 5}
    # Deferred before it is answered (Discord wants a response within 3 s, and the model
    # takes longer): the answer is not there yet.
    assert bots.discord.original(body["token"]) == ""
    answer = await eventually(
        lambda: (text := bots.discord.original(body["token"])) and not text.endswith("…")
        and text, timeout=60)
    assert answer.strip()
    # Every message went out with mentions switched off.
    sent = [c.json for c in bots.discord.calls if body["token"] in c.path and c.json]
    assert sent and all(m["allowed_mentions"] == {"parse": []} for m in sent)
    # The exchange is stored after the last edit goes out: read it once the job is done.
    await eventually(lambda: [s for s, *_ in bots.job_state("discord", body["id"])] == ["done"],
                     timeout=60)
    key = f"{body['guild_id']}:{body['channel_id']}:{user_id(body)}"
    assert bots.turns("discord", key)[0] == ("user", "What colour is grass? 🌱")


async def test_ask_in_a_dm_is_answered(bots: Bots, http: httpx.AsyncClient) -> None:
    body = interaction("ask_dm")
    bots.discord.open_interaction(body["token"])
    assert (await bots.discord_interaction(http, body)).json() == {"type": 5}
    await eventually(lambda: bots.job_state("discord", body["id"])
                     and bots.job_state("discord", body["id"])[0][0] == "done", timeout=60)
    assert bots.discord.original(body["token"]).strip()


async def test_reset_forgets_and_says_so_privately(bots: Bots, http: httpx.AsyncClient) -> None:
    ask = interaction(question="Remember the word 'teal'.")
    bots.discord.open_interaction(ask["token"])
    await bots.discord_interaction(http, ask)
    key = f"{ask['guild_id']}:{ask['channel_id']}:{user_id(ask)}"
    await eventually(lambda: len(bots.turns("discord", key)) == 2, timeout=60)
    reset = interaction("reset_guild")
    reset["channel_id"] = ask["channel_id"]
    reset["guild_id"] = ask["guild_id"]
    reset["member"] = ask["member"]
    response = (await bots.discord_interaction(http, reset)).json()
    assert response["type"] == 4
    assert response["data"]["flags"] == 64
    assert bots.turns("discord", key) == []


async def test_an_unknown_command_gets_a_private_hint(bots: Bots, http: httpx.AsyncClient
                                                      ) -> None:
    response = (await bots.discord_interaction(http, event("unknown_command"))).json()
    assert response["type"] == 4 and response["data"]["flags"] == 64


@pytest.mark.parametrize("case", ["tampered", "wrong key", "stale", "missing"])
async def test_bad_signatures_are_401(bots: Bots, http: httpx.AsyncClient, case: str) -> None:
    from tests.functions.discord.signing import ApplicationKeys

    body = interaction()
    raw = json.dumps(body).encode()
    ts = str(int(time.time()) - (3600 if case == "stale" else 0))
    keys = ApplicationKeys() if case == "wrong key" else bots.discord_keys
    headers = {"Content-Type": "application/json", **keys.headers(ts, raw)}
    if case == "tampered":
        raw = raw.replace(b'"type": 2', b'"type": 1')
    if case == "missing":
        headers = {"Content-Type": "application/json"}
    response = await http.post(bots.url + "/discord/interactions", content=raw, headers=headers)
    assert response.status_code == 401
    assert bots.job_state("discord", body["id"]) == []  # refused before anything is queued


async def test_an_interaction_that_expired_while_queued_is_given_up_without_asking(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    """A backlog longer than the 15 minutes an interaction's token lives: the answer could not
    be shown, so the job ends at once, saying why, and asks the model nothing."""
    body = interaction(question="Is anybody there?")
    body["id"] = snowflake(age_s=16 * 60)
    bots.discord.open_interaction(body["token"])
    assert (await bots.discord_interaction(http, body)).json() == {"type": 5}
    await eventually(lambda: [s for s, *_ in bots.job_state("discord", body["id"])]
                     == ["failed"], timeout=30)
    [(_, attempts, error)] = bots.job_state("discord", body["id"])
    assert attempts == 1 and error is not None and "time to reply ran out" in error
    assert not [c for c in bots.discord.calls if body["token"] in c.path]
