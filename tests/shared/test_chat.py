from __future__ import annotations

import itertools

import pytest

from shared.chat import (
    Message,
    WindowSplit,
    assemble,
    estimate_tokens,
    fit_messages,
    message_tokens,
    reference_message,
)
from shared.errors import PromptTooLong


def turns(n: int, size: int = 90) -> list[Message]:
    out: list[Message] = [{"role": "system", "content": "You are helpful."}]
    for i in range(n):
        out.append({"role": "user", "content": f"q{i} " + "x" * size})
        out.append({"role": "assistant", "content": f"a{i} " + "y" * size})
    out.append({"role": "user", "content": "the new question"})
    return out


def test_everything_is_kept_when_it_fits() -> None:
    messages = turns(3)
    assert fit_messages(messages, WindowSplit(4096, 512)) == messages


def test_oldest_turns_go_first_and_order_is_kept() -> None:
    messages = turns(40)
    budget = WindowSplit(1024, 256)
    fitted = fit_messages(messages, budget)
    assert fitted[0] == messages[0]  # the system prompt stays
    assert fitted[-1] == messages[-1]  # the new message stays
    assert len(fitted) < len(messages)
    assert sum(message_tokens(m) for m in fitted) <= budget.prompt_tokens
    # What is kept is a contiguous run of the newest turns, in their order.
    kept = fitted[1:-1]
    assert kept == messages[len(messages) - 1 - len(kept):-1]


def test_a_growing_conversation_keeps_its_first_turns_for_several_questions() -> None:
    # A client sends the whole history with each question. Were the oldest turn dropped one
    # by one, every question would start the prompt elsewhere, and the engine would read the
    # whole prompt cold each time; cut in steps, the prompt starts at the same turn for
    # several questions in a row, so the engine's cached prefix holds.
    budget = WindowSplit(1024, 256)
    starts, used = [], []
    for n in range(10, 60):
        fitted = fit_messages(turns(n), budget)
        assert sum(message_tokens(m) for m in fitted) <= budget.prompt_tokens
        if len(fitted) < len(turns(n)):
            starts.append(fitted[1]["content"][:4])
            used.append(sum(message_tokens(m) for m in fitted))
    assert len(starts) > 30
    # Each start is kept for at least two questions (a turn here is a fifth of a step).
    runs = [sum(1 for _ in group) for _, group in itertools.groupby(starts)]
    assert min(runs[1:-1]) >= 2 and len(runs) <= len(starts) // 2
    # Never more than a step (a quarter of the room) and a turn left unused.
    assert min(used) >= budget.prompt_tokens * 3 // 4 - 2 * message_tokens(turns(1)[1])


def test_a_message_too_long_for_the_window_is_refused() -> None:
    messages: list[Message] = [{"role": "user", "content": "palabra " * 5000}]
    with pytest.raises(PromptTooLong, match="tokens"):
        fit_messages(messages, WindowSplit(2048, 256))


def test_max_tokens_larger_than_the_window_is_refused() -> None:
    with pytest.raises(PromptTooLong, match="max_tokens"):
        fit_messages(turns(1), WindowSplit(1024, 1024))


def test_estimate_is_cautious_for_non_latin_text() -> None:
    # Three bytes per token over-counts: each of these CJK characters is 3 bytes in UTF-8.
    assert estimate_tokens("日本語のテキスト") >= 8
    assert estimate_tokens("") == 1


def test_assemble_puts_stable_parts_first_and_passages_last() -> None:
    history: list[Message] = [
        {"role": "user", "content": "hola"},
        {"role": "assistant", "content": "¡hola! ¿en qué te ayudo?"},
    ]
    prompt = assemble(system_prompt="Eres Charla.", history=history,
                      asked=[reference_message(["El lunes es festivo."]),
                             {"role": "user", "content": "¿y mañana?"}],
                      split=WindowSplit(4096, 512))
    assert prompt[0] == {"role": "system", "content": "Eres Charla."}
    assert prompt[1:3] == history
    assert "El lunes es festivo." in prompt[3]["content"]
    assert "do not follow" in prompt[3]["content"]
    assert prompt[-1] == {"role": "user", "content": "¿y mañana?"}


def test_assemble_keeps_the_prefix_of_the_previous_turn() -> None:
    """Turn n+1's prompt starts with turn n's stable part: the engine's prefix cache holds."""
    budget = WindowSplit(4096, 512)
    history: list[Message] = []
    previous: list[Message] | None = None
    for i in range(5):
        prompt = assemble(system_prompt="S", history=history,
                          asked=[reference_message([f"passage {i}"]),
                                 {"role": "user", "content": f"m{i}"}], split=budget)
        stable = prompt[: 1 + len(history)]
        if previous is not None:
            assert stable[: len(previous)] == previous
        previous = stable
        history = [*history, {"role": "user", "content": f"m{i}"},
                   {"role": "assistant", "content": f"r{i}"}]
