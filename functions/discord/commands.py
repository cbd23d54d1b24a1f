"""The slash commands Charla registers with Discord (bulk overwrite, see ``DiscordClient``).

Structure: https://discord.com/developers/docs/interactions/application-commands#application-command-object
``integration_types`` [GUILD_INSTALL] and ``contexts`` [GUILD, BOT_DM] make both commands
usable in the servers the bot was added to and in DMs with the bot, but not in other people's
DMs or group DMs (PRIVATE_CHANNEL), where a team's private bot has no business answering.
Discord documents these two fields for global commands only.
"""

from __future__ import annotations

from typing import Any

# https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-types
CHAT_INPUT = 1
# https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-type
STRING = 3
# https://discord.com/developers/docs/resources/application#application-object-application-integration-types
GUILD_INSTALL = 0
# https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-interaction-context-types
GUILD, BOT_DM = 0, 1

QUESTION_MAX_LENGTH = 4000



def _where() -> dict[str, Any]:
    # A fresh copy per command, so changing one command's lists cannot change the other's.
    return {"integration_types": [GUILD_INSTALL], "contexts": [GUILD, BOT_DM]}


COMMANDS: list[dict[str, Any]] = [
    {
        "name": "ask",
        "type": CHAT_INPUT,
        "description": "Ask Charla a question",
        "options": [
            {
                "type": STRING,
                "name": "question",
                "description": "What you want to know",
                "required": True,
                "min_length": 1,
                "max_length": QUESTION_MAX_LENGTH,
            },
        ],
        **_where(),
    },
    {
        "name": "reset",
        "type": CHAT_INPUT,
        "description": "Start a fresh conversation: Charla forgets what was said here",
        **_where(),
    },
    {
        "name": "forget",
        "type": CHAT_INPUT,
        "description": "Delete everything Charla has stored about you, everywhere",
        **_where(),
    },
]
