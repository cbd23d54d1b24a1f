"""An answer that loops is cut after its first turn; an ordinary answer is never cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.repetition import Loop, LoopCheck


def written(answer: str, step: int = 3) -> Loop | None:
    """Feed ``answer`` as a model writes it, a few characters at a time; the first loop."""
    check = LoopCheck()
    for end in range(step, len(answer) + step, step):
        loop = check.feed(answer[:end])
        if loop is not None:
            return loop
    return None


def test_a_repeated_sentence_is_cut_after_its_first_turn() -> None:
    answer = "Claro. Puedo ayudarte con eso. " * 6
    loop = written(answer)
    assert loop is not None and loop.kind == "stretch"
    assert answer[:loop.cut] == "Claro. Puedo ayudarte con eso."


def test_a_line_that_comes_back_a_third_time_is_cut() -> None:
    answer = ('Hola! - (Yan) "Hola!"\nA: Ejéreal\nB: "Hola!" dice ella\nA: Ejéreal\n'
              'C: otra cosa\nA: Ejéreal\nB: más')
    loop = written(answer)
    assert loop is not None and loop.kind == "line"
    assert answer[:loop.cut] == 'Hola! - (Yan) "Hola!"\nA: Ejéreal\nB: "Hola!" dice ella\n'


def test_a_loop_that_varies_a_little_each_turn_is_cut() -> None:
    turns = [f"The keeper {w} the light and the storm {w} the keeper and " for w in
             ("saw", "watched", "saw", "watched", "saw", "watched", "saw", "watched")]
    answer = "A story about a lighthouse. " + "".join(turns) * 2
    loop = written(answer)
    assert loop is not None
    assert answer[:loop.cut].startswith("A story about a lighthouse.")
    assert loop.cut < len(answer) // 2


def test_one_word_needs_more_turns() -> None:
    assert written("No, no, no. That is not how it works.") is None
    loop = written("It is very very very very very very very very long")
    assert loop is not None and loop.kind == "stretch"


@pytest.mark.parametrize("answer", [
    "Paso 1: abre el portal.\nPaso 2: elige las fechas.\nPaso 3: envía la solicitud.\n",
    "| Día | Hora |\n|---|---|\n| lunes | 9:00 |\n| martes | 9:00 |\n| miércoles | 9:00 |\n",
    "Wait... what? Well... I think so... yes.",
    "- Madrid: 23 días\n- Boston: 18 days\n- Lisboa: no consta\n",
    "```python\nfor i in range(3):\n    print(i)\n    print(i)\n```\n",
])
def test_ordinary_answers_are_not_cut(answer: str) -> None:
    assert written(answer) is None


def test_none_of_the_eval_sets_phrases_reads_as_a_loop() -> None:
    """Every passage phrase of the evaluation set, as an answer of its own."""
    eval_set = Path(__file__).resolve().parents[1] / "knowledge" / "eval" / "questions.json"
    for item in json.loads(eval_set.read_text()):
        if item["source"]:
            assert written(f"{item['answer_contains']}. {item['question']}") is None, item["id"]


def test_a_whole_answer_that_loops_keeps_only_the_first_turn() -> None:
    loop = LoopCheck().feed("Intro line. " + "I can help with that. " * 8)
    assert loop is not None
    assert ("Intro line. " + "I can help with that. " * 8)[:loop.cut] == (
        "Intro line. I can help with that.")
