"""A person asks the bot to forget them: /forget on Telegram and Discord, "forget me" in a Slack
direct message. Everything stored about them goes, and the bot says so in one line."""

from __future__ import annotations

import copy
import time
import uuid

import httpx

from functions.messaging import FORGOT_YOU, FORGOT_YOU_ES
from tests.functions.bots import Bots, eventually
from tests.functions.test_bots_discord import interaction, user_id
from tests.functions.test_bots_slack import sample
from tests.functions.test_bots_telegram import done, update


def stored_about(bots: Bots, platform: str, user: str) -> int:
    """Turns they wrote or that answered them, and jobs carrying their messages."""
    [(turns,)] = bots.rows(
        "SELECT count(*) FROM turns t JOIN conversations c ON c.id = t.conversation_id WHERE"
        " c.platform = %s AND t.delivery_id IN (SELECT delivery_id FROM turns WHERE author = %s)",
        platform, user)
    [(jobs,)] = bots.rows("SELECT count(*) FROM jobs WHERE payload->>'platform' = %s AND"
                          " payload->>'user' = %s AND kind = 'answer'", platform, user)
    return int(turns) + int(jobs)


async def test_telegram_forget_deletes_everything_about_the_person(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    upd = update(text="My name is Ana.")
    await bots.telegram_update(http, upd)
    await done(bots, upd)
    user = str(upd["message"]["from"]["id"])
    assert stored_about(bots, "telegram", user) == 3  # two turns, one job
    forget = update("command_reset")
    forget["message"]["text"] = "/forget"
    forget["message"]["entities"][0]["length"] = len("/forget")
    forget["message"]["chat"]["id"] = forget["message"]["from"]["id"] = int(user)
    response = await bots.telegram_update(http, forget)
    assert response.json()["text"] == FORGOT_YOU
    assert stored_about(bots, "telegram", user) == 0
    assert bots.turns("telegram", user) == []


async def test_discord_forget_answers_privately_and_deletes(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    ask = interaction(question="Remember the word 'teal'.")
    bots.discord.open_interaction(ask["token"])
    await bots.discord_interaction(http, ask)
    key = f"{ask['guild_id']}:{ask['channel_id']}:{user_id(ask)}"
    await eventually(lambda: len(bots.turns("discord", key)) == 2, timeout=60)
    forget = interaction("reset_guild")
    forget["data"]["name"] = "forget"
    forget["member"] = ask["member"]
    forget["guild_id"] = ask["guild_id"]
    response = (await bots.discord_interaction(http, forget)).json()
    assert response["type"] == 4 and response["data"]["flags"] == 64
    assert response["data"]["content"] == FORGOT_YOU
    assert bots.turns("discord", key) == []
    assert stored_about(bots, "discord", user_id(ask)) == 0


async def test_slack_forget_me_in_a_direct_message(bots: Bots, http: httpx.AsyncClient) -> None:
    team = "T0A1B2C3D"
    user = f"U{uuid.uuid4().hex[:8].upper()}"
    channel = f"D{uuid.uuid4().hex[:8].upper()}"

    def dm(text: str) -> dict[str, object]:
        body = copy.deepcopy(sample("message_im"))
        ts = f"{time.time():.6f}"
        body["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
        body["event"].update(text=text, ts=ts, event_ts=ts, channel=channel, user=user)
        body["event"].pop("blocks", None)
        return body

    first = dm("What is two plus two?")
    await bots.slack_event(http, first)
    await eventually(lambda: bots.job_state("slack", first["event_id"])  # type: ignore[index]
                     and bots.job_state("slack", first["event_id"])[0][0] == "done",  # type: ignore[index]
                     timeout=60)
    assert stored_about(bots, "slack", f"{team}:{user}") == 3
    forget = dm("Olvídame, por favor")
    await bots.slack_event(http, forget)
    confirmed = await eventually(lambda: [
        c.json for c in bots.slack.calls_to("chat.postMessage")
        if c.json.get("channel") == channel and c.json.get("text") == FORGOT_YOU_ES], timeout=30)
    assert len(confirmed) == 1
    await eventually(lambda: stored_about(bots, "slack", f"{team}:{user}") == 0)
    # Said once, even when Slack delivers the request again.
    await bots.slack_event(http, forget, retry=1)
    assert len([c for c in bots.slack.calls_to("chat.postMessage")
                if c.json.get("text") == FORGOT_YOU_ES and c.json.get("channel") == channel]) == 1


async def test_conversation_retention_zero_answers_but_keeps_no_history(
    stateless_bots: Bots, http: httpx.AsyncClient
) -> None:
    bots = stateless_bots
    upd = update(text="Remember the number 7.")
    await bots.telegram_update(http, upd)
    await done(bots, upd)
    chat = upd["message"]["chat"]["id"]
    assert bots.telegram.messages, "it answered"
    assert bots.turns("telegram", str(chat)) == []
    assert bots.rows("SELECT count(*) FROM turns") == [(0,)]
