"""Withdrawing an answer already on the platform (moderation): one message, the refusal."""

from __future__ import annotations

import uuid

import httpx
import pytest

from functions.slack.client import SlackClient, SlackReply
from functions.worker.reply import WITHDRAWN, ProgressiveReply
from shared.queue.outbox import Outbox
from shared.settings import Secret
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack

REFUSAL = "I can't help with that."
THREAD = "1718000000.000001"
LONG = "A harmless sentence that goes on. " * 150  # two Slack messages


class DeletingSlackReply(SlackReply):
    """Slack's channel with the ``chat.delete`` it could have; the fake forgets the message."""

    def __init__(self, client: SlackClient, channel: str, fake: FakeSlack) -> None:
        super().__init__(client, channel, THREAD)
        self.fake = fake

    async def delete(self, ref: str, part: int) -> None:
        del self.fake.messages[(self.channel, ref)]


def shown(fake: FakeSlack, channel: str) -> list[str]:
    return [m["text"] for (c, _), m in sorted(fake.messages.items()) if c == channel]


@pytest.mark.parametrize("deletes", [False, True])
async def test_a_long_answer_is_withdrawn_into_one_refusal(
    slack: tuple[FakeSlack, str], outbox: Outbox, deletes: bool
) -> None:
    fake, url = slack
    channel = f"C{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=5) as http:
        client = SlackClient(url, Secret(BOT_TOKEN), http)
        target = DeletingSlackReply(client, channel, fake) if deletes else \
            client.reply_channel({"channel": channel, "thread_ts": THREAD})
        reply = ProgressiveReply(target, outbox, f"test:{uuid.uuid4().hex}", interval_s=0,
                                 first_after_s=0)
        await reply.update(LONG)
        assert len(shown(fake, channel)) == 2
        await reply.replace(REFUSAL)
    assert shown(fake, channel) == ([REFUSAL] if deletes else [REFUSAL, WITHDRAWN])


async def test_a_refusal_before_anything_was_shown_is_posted_once(
    slack: tuple[FakeSlack, str], outbox: Outbox
) -> None:
    fake, url = slack
    channel = f"C{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=5) as http:
        target = SlackClient(url, Secret(BOT_TOKEN), http).reply_channel(
            {"channel": channel, "thread_ts": THREAD})
        reply = ProgressiveReply(target, outbox, f"test:{uuid.uuid4().hex}")
        await reply.update("The first wo")  # held back: the first words wait half a second
        await reply.replace(REFUSAL)
    assert shown(fake, channel) == [REFUSAL]
