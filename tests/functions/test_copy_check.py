"""A primed answer is shown as far as it copies its passage (functions/copy_check.py).

The cases are what the bundled model wrote on the evaluation set, shortened: a word changed in
the sentence it was started from, a figure changed, the prompt's markup after it, a sentence
of its own. Each is fed whole and in pieces, as a stream brings it, and must be decided the
same way both times.
"""

from __future__ import annotations

import pytest

from functions.copy_check import CopyGate

PASSAGE = ("Para ausencias de más de tres días hay que pedirlas con al menos 15 días naturales de "
           "antelación. Las vacaciones se piden en Portal Gente.\n\nCoche propio: se pagan "
           "0,26 € por kilómetro, más peajes.")
SENTENCE = ("Para ausencias de más de tres días hay que pedirlas con al menos 15 días naturales "
            "de antelación.")
LEAD = "Para ausencias de más de tres días hay"


def decided(answer: str, piece: int | None = None) -> tuple[tuple[str, ...] | None, bool, int]:
    """The verdict's words, whether it was within the first sentence, and how much may be
    shown: fed whole, or ``piece`` characters at a time and then whole."""
    gate = CopyGate(SENTENCE, PASSAGE, LEAD)
    verdict = None
    if piece:
        for end in range(piece, len(answer), piece):
            verdict = gate.feed(answer[:end])
            if verdict is not None:
                break
    verdict = verdict or gate.feed(answer, whole=True)
    return (verdict.unsupported if verdict else None), gate.first, gate.checked


@pytest.mark.parametrize("piece", [None, 1, 3, 7])
def test_the_sentence_copied_whole_is_shown_whole(piece: int | None) -> None:
    answer = SENTENCE + " [1]"
    assert decided(answer, piece) == (None, False, len(answer))


@pytest.mark.parametrize("piece", [None, 1, 3, 7])
@pytest.mark.parametrize(("answer", "wrong"), [
    (SENTENCE.replace("naturales", "laborables"), "laborables"),  # a meaning changed
    (SENTENCE.replace("15", "10"), "10"),  # a figure changed
    (LEAD + " que pedirlas con al menos 15 días.", "días"),  # a part of it, ended early
])
def test_a_word_changed_in_the_first_sentence_stops_it_before_anything_is_shown(
    answer: str, wrong: str, piece: int | None
) -> None:
    unsupported, first, shown = decided(answer, piece)
    assert first and shown == 0
    assert unsupported == (wrong,)


@pytest.mark.parametrize("piece", [None, 1, 3, 7])
def test_other_sentences_of_the_passage_may_follow_each_whole_and_once(
    piece: int | None
) -> None:
    answer = f"{SENTENCE} Las vacaciones se piden en Portal Gente. Coche propio: se pagan 0,26 €"
    # Ended inside a sentence: the sentences before it stay.
    assert decided(answer, piece) == (("26",), False, len(answer) - len("Coche propio: se "
                                                                         "pagan 0,26 €"))
    whole = f"{SENTENCE} Coche propio: se pagan 0.26 € por kilómetro, más peajes."
    assert decided(whole, piece) == (None, False, len(whole))


@pytest.mark.parametrize("piece", [None, 1, 3, 7])
@pytest.mark.parametrize(("after", "wrong"), [
    ("\n</passage>\n[5] Source: vacaciones.md", "passage"),  # the prompt's markup
    (" Los festivos son los de Madrid.", "Los"),  # a sentence of its own
    (" Las vacaciones se piden en Portal Gente. Las vacaciones se piden en Portal Gente.",
     "Las"),  # a sentence again
])
def test_what_leaves_the_passage_after_the_first_sentence_is_cut_off(
    after: str, wrong: str, piece: int | None
) -> None:
    answer = SENTENCE + after
    unsupported, first, shown = decided(answer, piece)
    assert unsupported == (wrong,) and not first
    kept = answer[:shown]
    assert kept.strip() in (SENTENCE, SENTENCE + " Las vacaciones se piden en Portal Gente.")
    assert "<" not in kept


def test_case_accents_and_citation_marks_are_not_words() -> None:
    answer = SENTENCE.upper().replace("Á", "A") + " [1][2]"
    assert decided(answer) == (None, False, len(answer))


def test_an_answer_that_does_not_begin_with_the_lead_is_not_held_to_a_copy() -> None:
    """The engine was not given the start (an engine at a URL that does not continue an
    answer): its own words are left to the fact check."""
    gate = CopyGate(SENTENCE, PASSAGE, LEAD)
    assert gate.feed("Hay que pedirlas") is None and gate.off
    assert gate.feed("Hay que pedirlas con 15 días.", whole=True) is None
    assert gate.checked == len("Hay que pedirlas con 15 días.")


def test_a_sentence_is_shown_once_its_last_word_is_known_to_be_whole() -> None:
    gate = CopyGate(SENTENCE, PASSAGE, LEAD)
    assert gate.feed(SENTENCE[:-2]) is None and gate.checked == 0  # "antelaci…" may grow
    assert gate.feed(SENTENCE[:-1]) is None and gate.checked == 0  # so may "antelación"
    assert gate.feed(SENTENCE) is None and gate.checked == len(SENTENCE)


def test_a_sentence_that_another_of_the_passage_goes_on_from_waits_for_the_next_word() -> None:
    passage = "Badges open the door. Badges open the door after 8:00 only."
    gate = CopyGate("Badges open the door.", passage, "Badges open")
    first = "Badges open the door. "  # shown with the space after it, as a stream sends it
    assert gate.feed(first + "Badges open the door ") is None
    assert gate.checked == len(first)  # the first is whole: shown
    assert gate.feed(first + "Badges open the door after") is None
    assert gate.checked == len(first)  # the second may be the longer one
    verdict = gate.feed(first + "Badges open the door after 9:00 only.", whole=True)
    assert verdict is not None and verdict.unsupported == ("9",)
    assert gate.checked == len(first)


def test_an_answer_with_no_word_is_no_copy() -> None:
    gate = CopyGate(SENTENCE, PASSAGE, LEAD)
    assert gate.feed(" …", whole=True) is not None and gate.first and gate.checked == 0
