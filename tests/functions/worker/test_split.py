"""Splitting answers at a platform's limit without breaking words or code blocks."""

from __future__ import annotations

import random

import pytest

from functions.messaging import utf16_length
from functions.worker.split import split_message

WORDS = ("charla", "privado", "modelo", "answer", "thread", "🙂", "señal", "naïve", "x" * 12)


def prose(n_words: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(n_words):
        out.append(rng.choice(WORDS))
        if i % 40 == 39:
            out.append("\n\n")
        elif i % 9 == 8:
            out.append("\n")
    return " ".join(out)


def test_a_short_answer_is_one_part() -> None:
    assert split_message("Hola 🙂", 2000) == ["Hola 🙂"]


@pytest.mark.parametrize("limit", [2000, 4096, 3000])
def test_exactly_at_the_limit_is_one_part_one_over_is_two(limit: int) -> None:
    at = "a" * limit
    assert split_message(at, limit) == [at]
    over = "a b " * (limit // 4) + "end"
    parts = split_message(over, limit)
    assert len(parts) == 2 and all(len(p) <= limit for p in parts)


@pytest.mark.parametrize("limit,length", [(2000, len), (4096, utf16_length), (300, utf16_length)])
def test_parts_fit_and_no_word_is_broken(limit: int, length) -> None:  # type: ignore[no-untyped-def]
    text = prose(3000)
    parts = split_message(text, limit, length)
    assert len(parts) > 1
    assert all(length(p) <= limit for p in parts)
    # Nothing lost, nothing invented: the words come back in order.
    assert " ".join(parts).split() == text.split()


def test_prefers_paragraph_breaks() -> None:
    para = "word " * 150
    text = (para.strip() + "\n\n") * 4
    parts = split_message(text, 2000)
    assert all(p.endswith("word") for p in parts)
    assert len(parts) == 2


def test_a_word_longer_than_a_message_is_cut() -> None:
    parts = split_message("x" * 5000, 2000)
    assert "".join(parts) == "x" * 5000
    assert all(len(p) <= 2000 for p in parts)


def test_emoji_count_double_in_utf16() -> None:
    text = "🙂" * 3000  # 3,000 characters, 6,000 UTF-16 units
    parts = split_message(text, 4096, utf16_length)
    assert all(utf16_length(p) <= 4096 for p in parts)
    assert "".join(parts) == text
    assert all("\ufffd" not in p for p in parts)


def test_a_code_block_split_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"    print({i})  # line {i}" for i in range(300))
    text = f"Here is the script:\n\n```python\n{code}\n```\n\nThat is all."
    parts = split_message(text, 2000)
    assert len(parts) >= 3
    for part in parts:
        assert len(part) <= 2000
        assert part.count("```") % 2 == 0, part[-80:]  # every part renders its fences
    assert all(p.startswith("```python\n") for p in parts[1:-1])
    # The code lines all survive, indentation included.
    joined = "\n".join(parts)
    assert all(f"    print({i})  # line {i}" in joined for i in range(300))
    assert parts[-1].endswith("That is all.")


def test_tiny_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        split_message("hello", 10)
