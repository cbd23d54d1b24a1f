"""Sorting Discord interactions (the samples under tests/events/discord/) into what to do."""

from __future__ import annotations

import json

import pytest

from functions.discord.payload import Ask, Ignored, Ping, Reset, classify
from functions.messaging import Inbound
from tests.functions.discord.events import event

APP = "1187654321098765432"
GUILD = "1098765432109876543"
CHANNEL = "1123456789012345678"
DM_CHANNEL = "1176543210987654321"
USER = "803456789012345678"


def ask(name: str) -> Inbound:
    result = classify(event(name))
    assert isinstance(result, Ask), result
    return result.inbound


def test_ping() -> None:
    assert classify(event("ping")) == Ping()


def test_ask_in_a_guild() -> None:
    sample = event("ask_guild")
    inbound = ask("ask_guild")
    assert inbound == Inbound(
        platform="discord",
        delivery_id="1201234567890120002",
        conversation=f"{GUILD}:{CHANNEL}:{USER}",
        user=USER,
        text="What is our on-call rotation for the payments service?",
        reply_to={"application_id": APP, "token": sample["token"]},
        principals=(f"discord:{GUILD}:{CHANNEL}", f"discord:{GUILD}"),
    )


def test_ask_in_a_dm() -> None:
    sample = event("ask_dm")
    inbound = ask("ask_dm")
    assert inbound.conversation == f"dm:{DM_CHANNEL}"
    assert inbound.user == USER
    assert inbound.delivery_id == "1201234567890120003"
    assert inbound.text == "Summarise the release checklist, please."
    assert inbound.reply_to == {"application_id": APP, "token": sample["token"]}


def test_an_ask_does_not_show_its_token() -> None:
    result = classify(event("ask_guild"))
    assert isinstance(result, Ask)
    assert result.inbound.reply_to["token"] not in repr(result) + str(result)
    assert "1201234567890120002" in repr(result)


def test_the_inbound_survives_the_job_queue() -> None:
    inbound = ask("ask_guild")
    assert Inbound.from_json(json.loads(json.dumps(inbound.to_json()))) == inbound


def test_channel_id_falls_back_to_the_channel_object() -> None:
    # channel_id is deprecated in favour of channel.id; either one is enough.
    sample = event("ask_guild")
    del sample["channel_id"]
    result = classify(sample)
    assert isinstance(result, Ask)
    assert result.inbound.conversation == f"{GUILD}:{CHANNEL}:{USER}"


def test_no_channel_at_all_is_ignored() -> None:
    sample = event("ask_dm")
    del sample["channel_id"], sample["channel"]
    assert isinstance(classify(sample), Ignored)


def test_people_in_different_channels_and_guilds_have_different_conversations() -> None:
    here = ask("ask_guild").conversation
    other_channel = event("ask_guild")
    other_channel["channel_id"] = other_channel["channel"]["id"] = "1123456789012349999"
    other_user = event("ask_guild")
    other_user["member"]["user"]["id"] = "803456789012349999"
    keys = {here}
    for sample in (other_channel, other_user):
        result = classify(sample)
        assert isinstance(result, Ask)
        keys.add(result.inbound.conversation)
    assert len(keys) == 3


def test_reset() -> None:
    assert classify(event("reset_guild")) == Reset(
        conversation=f"{GUILD}:{CHANNEL}:{USER}", user=USER, delivery_id="1201234567890120004")


def test_reset_in_a_dm_names_the_dm_conversation() -> None:
    sample = event("ask_dm")
    sample["data"] = {"id": "1187654321098765501", "name": "reset", "type": 1}
    result = classify(sample)
    assert isinstance(result, Reset)
    assert result.conversation == f"dm:{DM_CHANNEL}"


@pytest.mark.parametrize(("sample", "reason"), [
    ("unknown_command", "unknown command"),
    ("component", "interaction type 3 is not handled"),
    ("bot_user", "the invoking user is a bot"),
    ("ask_empty", "empty question"),
])
def test_ignored(sample: str, reason: str) -> None:
    assert classify(event(sample)) == Ignored(reason)


def test_a_bot_in_a_dm_is_ignored_too() -> None:
    sample = event("ask_dm")
    sample["user"]["bot"] = True
    assert classify(sample) == Ignored("the invoking user is a bot")


def test_unicode_and_emoji_pass_through_unchanged() -> None:
    assert ask("ask_unicode").text == "¿Qué significa 👩‍💻 en «日本語»? Ünïcödé ok 🚀"


@pytest.mark.parametrize("change", [
    "no question option", "question is not a string", "question has the wrong type",
    "options is not a list", "user command", "autocomplete", "modal submit", "no type",
    "no user", "user id is not a snowflake", "no interaction id", "no token",
    "no application id", "data is not an object", "member is not an object",
])
def test_malformed_or_unhandled_interactions_are_ignored_not_errors(change: str) -> None:
    sample = event("ask_guild")
    data = sample["data"]
    if change == "no question option":
        data["options"] = [{"name": "topic", "type": 3, "value": "x"}]
    elif change == "question is not a string":
        data["options"][0]["value"] = 42
    elif change == "question has the wrong type":
        data["options"][0]["type"] = 4
    elif change == "options is not a list":
        data["options"] = {"question": "hi"}
    elif change == "user command":
        data["type"] = 2
    elif change == "autocomplete":
        sample["type"] = 4
    elif change == "modal submit":
        sample["type"] = 5
    elif change == "no type":
        del sample["type"]
    elif change == "no user":
        del sample["member"]
    elif change == "user id is not a snowflake":
        sample["member"]["user"]["id"] = "12ab"
    elif change == "no interaction id":
        del sample["id"]
    elif change == "no token":
        sample["token"] = ""
    elif change == "no application id":
        del sample["application_id"]
    elif change == "data is not an object":
        sample["data"] = "ask"
    elif change == "member is not an object":
        sample["member"] = ["not", "a", "member"]
    result = classify(sample)
    assert isinstance(result, Ignored)
    assert sample.get("token", "") == "" or sample["token"] not in result.reason


def test_no_ignored_reason_quotes_the_payload() -> None:
    sample = event("component")
    sample["type"] = sample["token"]  # the worst case: a payload field in a reported spot
    result = classify(sample)
    assert isinstance(result, Ignored)
    assert sample["token"] not in result.reason
