"""The slash commands' definitions: valid for Discord and matching what payload.py reads."""

from __future__ import annotations

import re
from typing import Any

from functions.discord.commands import COMMANDS
from functions.discord.payload import Ask, Forget, Reset, classify
from tests.functions.discord.events import event

NAME = re.compile(r"^[-_'\w]{1,32}$")


def by_name() -> dict[str, dict[str, Any]]:
    return {command["name"]: command for command in COMMANDS}


def test_ask_reset_and_forget_are_slash_commands() -> None:
    commands = by_name()
    assert sorted(commands) == ["ask", "forget", "reset"]
    for name, command in commands.items():
        assert NAME.match(name) and name == name.lower()
        assert command["type"] == 1  # CHAT_INPUT
        description = command["description"]
        assert isinstance(description, str) and 1 <= len(description) <= 100


def test_ask_takes_one_required_question() -> None:
    [option] = by_name()["ask"]["options"]
    assert option["name"] == "question" and option["type"] == 3  # STRING
    assert option["required"] is True
    assert 1 <= len(option["description"]) <= 100
    assert option["max_length"] == 4000
    assert "options" not in by_name()["reset"] and "options" not in by_name()["forget"]


def test_both_work_in_guilds_and_in_dms_with_the_bot_only() -> None:
    for command in COMMANDS:
        assert command["integration_types"] == [0]  # GUILD_INSTALL
        assert command["contexts"] == [0, 1]  # GUILD, BOT_DM; not PRIVATE_CHANNEL


def test_the_commands_lists_are_not_shared() -> None:
    ask, reset, forget = COMMANDS
    assert ask["contexts"] is not reset["contexts"] is not forget["contexts"]


def test_payload_understands_what_the_commands_define() -> None:
    ask, reset = event("ask_guild"), event("reset_guild")
    option = by_name()["ask"]["options"][0]
    ask["data"] = {"id": "1", "type": 1, "name": by_name()["ask"]["name"],
                   "options": [{"name": option["name"], "type": option["type"],
                                "value": "Does this work?"}]}
    reset["data"] = {"id": "2", "type": 1, "name": by_name()["reset"]["name"]}
    result = classify(ask)
    assert isinstance(result, Ask) and result.inbound.text == "Does this work?"
    assert isinstance(classify(reset), Reset)
    reset["data"] = {"id": "3", "type": 1, "name": by_name()["forget"]["name"]}
    forget = classify(reset)
    assert isinstance(forget, Forget) and forget.user
