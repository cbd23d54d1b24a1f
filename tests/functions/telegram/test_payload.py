"""What each kind of Telegram Update becomes, over sample deliveries in tests/events/telegram/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from functions.messaging import Inbound
from functions.telegram.payload import (
    Command,
    Ignored,
    Question,
    bot_id_from_token,
    classify,
)

EVENTS = Path(__file__).parents[2] / "events" / "telegram"
TOKEN = "6100000001:AAHf3kq9ZpLwN2xVb7TcR1sYuQe4mJd8oGi"
BOT_ID = 6100000001
USERNAME = "charla_test_bot"
GROUP = -1001234567890
FORUM = -1009876543210


def event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def run(name: str | dict[str, Any], username: str | None = USERNAME) -> Any:
    update = event(name) if isinstance(name, str) else name
    return classify(update, bot_id=BOT_ID, bot_username=username)


def test_every_sample_is_used() -> None:
    used = {"private_text", "group_mention", "group_reply_to_bot", "group_not_addressed",
            "command_start", "command_help_addressed", "command_reset", "group_ask",
            "command_other_bot", "edited_message", "message_from_bot", "photo_without_caption",
            "forum_topic_message", "forum_topic_unaddressed", "unicode_emoji", "channel_post",
            "callback_query", "my_chat_member", "group_photo_caption",
            "private_document_caption"}
    assert {path.stem for path in EVENTS.glob("*.json")} == used


def test_a_private_message_is_a_question() -> None:
    assert run("private_text") == Question(Inbound(
        platform="telegram", delivery_id="583920001", conversation="1111111111",
        user="1111111111", text="What is the VPN address for the Madrid office?",
        reply_to={"chat_id": 1111111111, "message_thread_id": None, "reply_to_message_id": 17},
        principals=("telegram:1111111111",),
    ))


def test_a_group_mention_is_a_question_without_the_mention() -> None:
    result = run("group_mention")
    assert isinstance(result, Question)
    assert result.inbound.text == "how do I rotate the staging database password?"
    assert result.inbound.conversation == str(GROUP)
    assert result.inbound.user == "2222222222"
    assert result.inbound.reply_to == {"chat_id": GROUP, "message_thread_id": None,
                                       "reply_to_message_id": 4101}


def test_a_group_reply_to_the_bot_is_a_question() -> None:
    result = run("group_reply_to_bot")
    assert isinstance(result, Question)
    assert result.inbound.text == "And for production?"
    assert result.inbound.reply_to["reply_to_message_id"] == 4103


def test_a_reply_to_someone_else_is_not() -> None:
    update = event("group_reply_to_bot")
    update["message"]["reply_to_message"]["from"] = {"id": 1111111111, "is_bot": False,
                                                     "first_name": "Ana"}
    assert isinstance(run(update), Ignored)


def test_a_group_message_not_addressed_to_the_bot_is_ignored() -> None:
    result = run("group_not_addressed")
    assert isinstance(result, Ignored)
    assert "not addressed" in result.reason


def test_without_a_username_only_replies_and_ask_count_in_groups() -> None:
    assert isinstance(run("group_mention", username=None), Ignored)
    assert isinstance(run("group_reply_to_bot", username=None), Question)
    assert isinstance(run("group_ask", username=None), Question)
    assert isinstance(run("private_text", username=None), Question)


def test_the_username_may_be_given_with_its_at_sign() -> None:
    assert isinstance(run("group_mention", username="@Charla_Test_Bot"), Question)


@pytest.mark.parametrize(("name", "command", "chat_id", "conversation", "user", "delivery"), [
    ("command_start", "start", 1111111111, "1111111111", "1111111111", "583920005"),
    ("command_help_addressed", "help", GROUP, str(GROUP), "2222222222", "583920006"),
    ("command_reset", "reset", 1111111111, "1111111111", "1111111111", "583920007"),
])
def test_commands(name: str, command: str, chat_id: int, conversation: str, user: str,
                  delivery: str) -> None:
    assert run(name) == Command(name=command, chat_id=chat_id, message_thread_id=None,
                                conversation=conversation, user=user, delivery_id=delivery)


def test_a_command_in_a_forum_topic_keeps_the_topic() -> None:
    update = event("forum_topic_message")
    update["message"].update(text="/reset", entities=[{"offset": 0, "length": 6,
                                                       "type": "bot_command"}])
    assert run(update) == Command("reset", FORUM, 42, f"{FORUM}:42", "2222222222", "583920013")


def test_ask_in_a_group_is_a_question_with_the_text_after_it() -> None:
    result = run("group_ask")
    assert isinstance(result, Question)
    assert result.inbound.text == "what's the on-call rotation this week?"
    assert result.inbound.delivery_id == "583920008"


def test_ask_addressed_to_the_bot_drops_the_address_too() -> None:
    update = event("group_ask")
    text = "/ask@charla_test_bot  @charla_test_bot is the VPN down?"
    update["message"].update(text=text, entities=[
        {"offset": 0, "length": 20, "type": "bot_command"},
        {"offset": 22, "length": 16, "type": "mention"},
    ])
    result = run(update)
    assert isinstance(result, Question)
    assert result.inbound.text == "is the VPN down?"


def test_ask_without_a_question_is_ignored() -> None:
    update = event("group_ask")
    update["message"].update(text="/ask  ", entities=[{"offset": 0, "length": 4,
                                                       "type": "bot_command"}])
    assert run(update) == Ignored("empty question")


def test_a_command_for_another_bot_is_ignored() -> None:
    assert run("command_other_bot") == Ignored("command for another bot")


def test_an_unknown_command_is_ignored_even_in_private() -> None:
    update = event("command_start")
    update["message"].update(text="/weather Madrid", entities=[
        {"offset": 0, "length": 8, "type": "bot_command"}])
    assert run(update) == Ignored("unknown command")


def test_a_command_later_in_the_text_is_just_text() -> None:
    update = event("private_text")
    update["message"].update(text="what does /reset do?", entities=[
        {"offset": 10, "length": 6, "type": "bot_command"}])
    result = run(update)
    assert isinstance(result, Question)
    assert result.inbound.text == "what does /reset do?"


@pytest.mark.parametrize(("name", "reason"), [
    ("edited_message", "edited_message"),
    ("channel_post", "channel_post"),
    ("callback_query", "callback_query"),
    ("my_chat_member", "my_chat_member"),
    ("photo_without_caption", "without text or caption"),
    ("message_from_bot", "from a bot"),
])
def test_updates_that_are_ignored(name: str, reason: str) -> None:
    result = run(name)
    assert isinstance(result, Ignored)
    assert reason in result.reason


def test_a_document_with_a_caption_is_answered_by_its_caption() -> None:
    result = run("private_document_caption")
    assert isinstance(result, Question)
    assert result.inbound.text == ("Why does the VPN client keep disconnecting? The log is"
                                   " attached.")
    assert result.inbound.reply_to == {"chat_id": 1111111111, "message_thread_id": None,
                                       "reply_to_message_id": 21}


def test_a_mention_in_a_photo_caption_addresses_the_bot_in_a_group() -> None:
    # caption_entities count UTF-16 units like entities: the emoji before the mention is two.
    result = run("group_photo_caption")
    assert isinstance(result, Question)
    assert result.inbound.text == "🔥 what does this error in the deploy log mean?"
    assert result.inbound.reply_to["reply_to_message_id"] == 4110
    # Without its caption_entities the caption does not mention the bot.
    update = event("group_photo_caption")
    del update["message"]["caption_entities"]
    assert run(update) == Ignored("group message not addressed to the bot")


def test_text_entities_do_not_address_a_caption() -> None:
    update = event("group_photo_caption")
    update["message"]["entities"] = update["message"].pop("caption_entities")
    assert run(update) == Ignored("group message not addressed to the bot")


def test_a_command_in_a_caption() -> None:
    update = event("group_photo_caption")
    update["message"].update(caption="/ask@charla_test_bot is this graph normal?",
                             caption_entities=[{"offset": 0, "length": 20,
                                                "type": "bot_command"}])
    result = run(update)
    assert isinstance(result, Question)
    assert result.inbound.text == "is this graph normal?"
    update["message"].update(caption="/reset", caption_entities=[
        {"offset": 0, "length": 6, "type": "bot_command"}])
    assert run(update) == Command("reset", GROUP, None, str(GROUP), "2222222222", "583920016")


def test_an_empty_caption_is_ignored() -> None:
    update = event("private_document_caption")
    update["message"]["caption"] = ""
    assert run(update) == Ignored("message without text or caption")


def test_an_update_without_an_update_id_is_ignored() -> None:
    update = event("private_text")
    del update["update_id"]
    assert run(update) == Ignored("update without an update_id")


def test_the_bot_itself_is_ignored_even_without_is_bot() -> None:
    update = event("private_text")
    update["message"]["from"] = {"id": BOT_ID, "first_name": "Charla"}
    assert run(update) == Ignored("message from a bot")


def test_a_forum_topic_is_its_own_conversation() -> None:
    result = run("forum_topic_message")
    assert isinstance(result, Question)
    assert result.inbound.conversation == f"{FORUM}:42"
    assert result.inbound.text == "summarise the runbook for a failed deploy"
    assert result.inbound.reply_to == {"chat_id": FORUM, "message_thread_id": 42,
                                       "reply_to_message_id": 57}


def test_a_topic_the_bot_opened_does_not_address_every_message_in_it() -> None:
    assert run("forum_topic_unaddressed") == Ignored("group message not addressed to the bot")


def test_a_reply_chain_in_a_plain_group_is_not_a_topic() -> None:
    update = event("group_reply_to_bot")
    update["message"]["message_thread_id"] = 4102  # set on replies, without is_topic_message
    result = run(update)
    assert isinstance(result, Question)
    assert result.inbound.conversation == str(GROUP)
    assert result.inbound.reply_to["message_thread_id"] is None


def test_mentions_are_found_by_utf16_offsets_and_case_insensitively() -> None:
    result = run("unicode_emoji")
    assert isinstance(result, Question)
    assert result.inbound.text == "👋 ¿qué significa 🚀 en el changelog? 日本語もOK"


def test_the_sample_does_not_change_while_classified() -> None:
    update = event("unicode_emoji")
    before = copy.deepcopy(update)
    run(update)
    assert update == before


def test_inbound_round_trips_through_json() -> None:
    result = run("forum_topic_message")
    assert isinstance(result, Question)
    assert Inbound.from_json(json.loads(json.dumps(result.inbound.to_json()))) == result.inbound


def test_bot_id_from_token() -> None:
    assert bot_id_from_token(TOKEN) == BOT_ID


@pytest.mark.parametrize("token", ["", "AAHf3kq9ZpLwN2xVb7TcR1sYuQe4mJd8oGi", "abc:def",
                                   "6100000001:", ":secret", "٦١:secret"])
def test_a_malformed_token_is_refused_without_repeating_it(token: str) -> None:
    with pytest.raises(ValueError) as info:
        bot_id_from_token(token)
    if token:
        assert token not in str(info.value)
