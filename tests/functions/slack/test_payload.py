"""Sorting Slack deliveries, over the recorded sample events under tests/events/slack/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from functions.messaging import Inbound
from functions.slack.payload import (
    Ignored,
    Question,
    UrlVerification,
    bot_user_id,
    classify,
    event_id,
    strip_mentions,
    team_id,
)

EVENTS = Path(__file__).parents[2] / "events" / "slack"
TEAM, BOT, ALICE, BOB = "T0A1B2C3D", "U07CHARLA", "U02ALICE1", "U03BOBBY2"
CHANNEL, DM = "C05GENERL1", "D06ALICEDM"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def question(name: str) -> Question:
    result = classify(load(name))
    assert isinstance(result, Question), result
    return result


# Every sample file and what it must become; a new sample without an entry fails below.
IGNORED = {
    "message_channel.json": "outside a thread",
    "message_thread_reply_mention.json": "app_mention",
    "message_bot_message.json": "bot",
    "message_changed.json": "message_changed",
    "message_from_self.json": "bot",
    "message_channel_join.json": "channel_join",
    "reaction_added.json": "reaction_added",
    "app_mention_edited.json": "edited",
}
ANSWERED = {"app_mention_channel.json", "app_mention_thread.json", "app_mention_unicode.json",
            "message_im.json", "message_im_file_share.json", "message_thread_reply.json"}


def test_every_sample_event_has_an_expectation() -> None:
    samples = {path.name for path in EVENTS.glob("*.json")}
    assert samples == set(IGNORED) | ANSWERED | {"url_verification.json"}


def test_url_verification_echoes_the_challenge() -> None:
    body = load("url_verification.json")
    assert classify(body) == UrlVerification(body["challenge"])


def test_app_mention_in_a_channel() -> None:
    result = question("app_mention_channel.json")
    assert result.needs_existing_conversation is False
    assert result.inbound == Inbound(
        platform="slack",
        delivery_id="Ev07MENTION1",
        conversation=f"{TEAM}:{CHANNEL}:1718000100.000200",
        user=f"{TEAM}:{ALICE}",
        text="what is our on-call rotation this week?",
        reply_to={"channel": CHANNEL, "thread_ts": "1718000100.000200", "user": ALICE,
                  "team": TEAM},
        principals=(f"slack:{TEAM}:{CHANNEL}", f"slack:{TEAM}"),
    )


def test_app_mention_in_a_thread_continues_the_thread() -> None:
    result = question("app_mention_thread.json")
    inbound = result.inbound
    assert result.needs_existing_conversation is False
    assert inbound.conversation == f"{TEAM}:{CHANNEL}:1718000100.000200"  # the parent's ts
    assert inbound.reply_to == {"channel": CHANNEL, "thread_ts": "1718000100.000200",
                                "user": BOB, "team": TEAM}
    assert inbound.user == f"{TEAM}:{BOB}"
    # The bot's mention goes, another person's stays.
    assert inbound.text == f"and who is the backup? cc <@{ALICE}>"


def test_direct_message() -> None:
    result = question("message_im.json")
    assert result.needs_existing_conversation is False
    assert result.inbound.delivery_id == "Ev07DIRECT1"
    assert result.inbound.conversation == f"{TEAM}:{DM}:1718000400.000500"
    assert result.inbound.text == "How do I reset my VPN password?"
    assert result.inbound.reply_to == {"channel": DM, "thread_ts": "1718000400.000500",
                                       "user": ALICE, "team": TEAM}


def test_thread_reply_without_mention_needs_an_existing_conversation() -> None:
    result = question("message_thread_reply.json")
    assert result.needs_existing_conversation is True
    assert result.inbound.conversation == f"{TEAM}:{CHANNEL}:1718000100.000200"
    assert result.inbound.text == "thanks! and for staging?"


def test_unicode_and_emoji_survive() -> None:
    result = question("app_mention_unicode.json")
    assert result.inbound.text == "¿Qué significa «idempotente»? 日本語でも説明して 🚀👩‍💻"
    json.dumps(result.inbound.to_json(), ensure_ascii=False)  # still a JSON-able job
    assert Inbound.from_json(result.inbound.to_json()) == result.inbound


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_ignored_samples(name: str) -> None:
    result = classify(load(name))
    assert isinstance(result, Ignored)
    assert IGNORED[name] in result.reason


def test_own_message_is_ignored_even_without_bot_id() -> None:
    body = load("message_from_self.json")
    for key in ("bot_id", "bot_profile", "app_id"):
        del body["event"][key]
    result = classify(body)
    assert isinstance(result, Ignored)
    assert "this bot itself" in result.reason


@pytest.mark.parametrize("subtype", ["bot_message", "message_deleted", "channel_join",
                                     "thread_broadcast", "me_message"])
def test_any_subtype_is_ignored(subtype: str) -> None:
    body = load("message_im.json")
    body["event"]["subtype"] = subtype
    result = classify(body)
    assert isinstance(result, Ignored)
    assert subtype in result.reason


def test_an_edited_mention_is_not_answered_again() -> None:
    # Slack delivers app_mention again for an edit: a new event_id, `edited`, no subtype.
    body = load("app_mention_edited.json")
    assert body["event_id"] != load("app_mention_channel.json")["event_id"]
    assert "subtype" not in body["event"]
    assert classify(body) == Ignored("edited message (answered when it was first sent)")


@pytest.mark.parametrize("name", ["message_im.json", "message_thread_reply.json",
                                  "message_im_file_share.json"])
def test_an_edited_message_of_any_kind_is_ignored(name: str) -> None:
    body = load(name)
    body["event"]["edited"] = {"user": ALICE, "ts": "1718000999.000000"}
    result = classify(body)
    assert isinstance(result, Ignored)
    assert "edited" in result.reason


def test_a_direct_message_with_a_file_is_answered_by_its_text() -> None:
    result = question("message_im_file_share.json")
    assert result.direct is True
    assert result.inbound.text == "The VPN client shows this error, what does it mean?"
    # A file_share event may come without `team`: the envelope's names the workspace.
    assert result.inbound.user == f"{TEAM}:{ALICE}"
    assert result.inbound.reply_to == {"channel": DM, "thread_ts": "1718000700.000700",
                                       "user": ALICE, "team": TEAM}


def test_a_file_without_text_is_ignored() -> None:
    body = load("message_im_file_share.json")
    body["event"]["text"] = ""
    assert classify(body) == Ignored("files without text")


def test_a_mention_with_a_file_is_answered_by_its_text() -> None:
    body = load("app_mention_channel.json")
    body["event"].update(subtype="file_share", files=[{"id": "F07SCREEN1"}], upload=False)
    result = classify(body)
    assert isinstance(result, Question)
    assert result.inbound.text == "what is our on-call rotation this week?"


def test_a_thread_reply_with_a_file_needs_an_existing_conversation() -> None:
    body = load("message_thread_reply.json")
    body["event"].update(subtype="file_share", files=[{"id": "F07SCREEN1"}], upload=False)
    result = classify(body)
    assert isinstance(result, Question)
    assert result.needs_existing_conversation is True


def test_a_file_shared_by_a_bot_is_ignored() -> None:
    body = load("message_im_file_share.json")
    body["event"]["bot_id"] = "B09DEPLOY1"
    assert classify(body) == Ignored("message from a bot")


def test_an_app_mention_from_another_bot_is_ignored() -> None:
    body = load("app_mention_channel.json")
    body["event"]["bot_id"] = "B09DEPLOY1"
    assert isinstance(classify(body), Ignored)


@pytest.mark.parametrize("text", ["", "   ", f"<@{BOT}>", f"  <@{BOT}>  \n "])
def test_empty_text_is_ignored(text: str) -> None:
    body = load("app_mention_channel.json")
    body["event"]["text"] = text
    assert classify(body) == Ignored("empty text")


def test_a_thread_parent_in_a_channel_is_not_a_reply() -> None:
    body = load("message_thread_reply.json")
    body["event"]["ts"] = body["event"]["thread_ts"]
    result = classify(body)
    assert isinstance(result, Ignored)
    assert "outside a thread" in result.reason


def test_thread_replies_in_private_channels_and_group_dms_count() -> None:
    for channel_type in ("group", "mpim"):
        body = load("message_thread_reply.json")
        body["event"]["channel_type"] = channel_type
        result = classify(body)
        assert isinstance(result, Question)
        assert result.needs_existing_conversation is True


def test_a_thread_reply_in_a_dm_is_a_dm() -> None:
    body = load("message_im.json")
    body["event"]["thread_ts"] = "1718000400.000500"
    body["event"]["ts"] = "1718000450.000001"
    result = classify(body)
    assert isinstance(result, Question)
    assert result.needs_existing_conversation is False
    assert result.inbound.reply_to["thread_ts"] == "1718000400.000500"


def test_without_authorizations_thread_replies_are_not_answered() -> None:
    # Without the bot's id a reply cannot be told apart from one Slack also sends as
    # app_mention, which would be answered twice.
    body = load("message_thread_reply.json")
    del body["authorizations"]
    assert isinstance(classify(body), Ignored)
    # ...unless the caller knows the id (from auth.test).
    result = classify(body, bot_user=BOT)
    assert isinstance(result, Question)


def test_without_authorizations_a_leading_mention_is_still_removed() -> None:
    body = load("app_mention_channel.json")
    del body["authorizations"]
    result = classify(body)
    assert isinstance(result, Question)
    assert result.inbound.text == "what is our on-call rotation this week?"


def test_team_falls_back_to_the_events_team() -> None:
    body = load("message_im.json")
    del body["team_id"]
    assert team_id(body) == TEAM
    result = classify(body)
    assert isinstance(result, Question)
    assert result.inbound.user == f"{TEAM}:{ALICE}"


@pytest.mark.parametrize("change", ["no event_id", "no user", "no channel", "event not a dict",
                                    "text not a string", "subtype not a string",
                                    "unknown envelope"])
def test_malformed_deliveries_are_ignored_not_raised(change: str) -> None:
    body = copy.deepcopy(load("message_im.json"))
    if change == "no event_id":
        del body["event_id"]
    elif change == "no user":
        del body["event"]["user"]
    elif change == "no channel":
        del body["event"]["channel"]
    elif change == "event not a dict":
        body["event"] = ["message"]
    elif change == "text not a string":
        body["event"]["text"] = {"oops": 1}
    elif change == "subtype not a string":
        body["event"]["subtype"] = ["file_share"]
    else:
        body["type"] = "app_rate_limited"
    assert isinstance(classify(body), Ignored)


def test_plain_helpers() -> None:
    body = load("app_mention_thread.json")
    assert event_id(body) == "Ev07MENTION2"
    assert team_id(body) == TEAM
    assert bot_user_id(body) == BOT
    assert event_id({}) is None
    assert team_id({"event": "x"}) is None
    assert bot_user_id({"authorizations": [{"user_id": ALICE, "is_bot": False}]}) is None


def test_strip_mentions() -> None:
    assert strip_mentions(f"<@{BOT}> hi <@{BOT}|charla> there", BOT) == "hi there"
    assert strip_mentions(f"ask <@{ALICE}> or <@{BOT}>", BOT) == f"ask <@{ALICE}> or"
    assert strip_mentions(f"<@{BOT}2> not me", BOT) == f"<@{BOT}2> not me"
