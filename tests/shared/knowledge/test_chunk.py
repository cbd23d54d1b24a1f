"""Chunking: structure first, sizes bounded, neighbours overlapping, the same output every time."""

from __future__ import annotations

import itertools
import random

import pytest

from shared.chat import estimate_tokens
from shared.knowledge.chunk import Chunk, chunk_document, split_sentences
from shared.knowledge.parse import Document, Section

WORDS = ["policy", "team", "leave", "manager", "request", "days", "year", "office", "remote",
         "budget", "approval", "travel", "política", "equipo", "permiso", "días", "año",
         "oficina", "presupuesto", "viaje"]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 30))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def document(seed: int = 7) -> Document:
    rng = random.Random(seed)
    sections = []
    for n in range(6):
        paragraphs = [paragraph(rng, rng.randint(1, 14)) for _ in range(rng.randint(1, 6))]
        sections.append(Section(("Handbook", f"Part {n}"), n + 1 if n % 2 else None,
                                "\n\n".join(paragraphs)))
    return Document("Handbook", "text/plain", sections)


def doc_of(*sections: Section) -> Document:
    return Document("t", "text/plain", list(sections))


def test_sections_are_never_joined_and_keep_their_heading_and_page() -> None:
    doc = doc_of(Section(("Guide", "Install"), None, "Run the installer."),
                 Section(("Guide", "Use"), 4, "Open the app."),
                 Section((), None, "Loose text."))
    assert chunk_document(doc) == [Chunk(0, "Guide › Install", None, "Run the installer."),
                                   Chunk(1, "Guide › Use", 4, "Open the app."),
                                   Chunk(2, None, None, "Loose text.")]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 40), (64, 16), (30, 0), (20, 19)])
def test_every_chunk_fits_and_stays_in_its_section(max_tokens: int, overlap: int) -> None:
    doc = document()
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(0 < estimate_tokens(c.text) <= max_tokens for c in chunks)
    by_heading = {" › ".join(s.heading): s for s in doc.sections}
    for chunk in chunks:
        assert chunk.heading is not None
        section = by_heading[chunk.heading]
        assert chunk.page == section.page
        # Every chunk's words come from its own section, in order.
        assert " ".join(chunk.text.split()) in " ".join(section.text.split())


def test_all_the_text_is_kept() -> None:
    doc = document(3)
    text = " ".join(c.text for c in chunk_document(doc, max_tokens=50, overlap_tokens=10))
    for section in doc.sections:
        for sentence_ in split_sentences(section.text):
            if estimate_tokens(sentence_) <= 50:
                assert sentence_ in text


def test_a_paragraph_that_fits_is_never_cut() -> None:
    rng = random.Random(11)
    paragraphs = [paragraph(rng, rng.randint(1, 4)) for _ in range(20)]
    paragraphs = [p for p in paragraphs if estimate_tokens(p) <= 100]
    chunks = chunk_document(doc_of(Section((), None, "\n\n".join(paragraphs))),
                            max_tokens=100, overlap_tokens=0)
    for p in paragraphs:
        assert any(p in c.text.split("\n") for c in chunks)
    assert "\n".join(c.text for c in chunks) == "\n".join(paragraphs)


def test_consecutive_chunks_of_a_section_overlap_by_whole_sentences() -> None:
    doc = doc_of(Section(("A",), None, paragraph(random.Random(5), 40)),
                 Section(("B",), None, paragraph(random.Random(6), 40)))
    chunks = chunk_document(doc, max_tokens=120, overlap_tokens=40)
    pairs = list(itertools.pairwise(chunks))
    same = [(a, b) for a, b in pairs if a.heading == b.heading]
    assert len(same) >= 6
    for before, after in same:
        shared = [s for s in split_sentences(after.text)
                  if before.text.endswith(s) or f"{s} " in before.text]
        assert shared, (before.text, after.text)
        assert after.text.startswith(shared[0])
        assert estimate_tokens(" ".join(shared)) <= 40
    # Across the section boundary nothing is repeated.
    first_b = next(c for c in chunks if c.heading == "B")
    last_a = [c for c in chunks if c.heading == "A"][-1]
    assert not any(s in last_a.text for s in split_sentences(first_b.text))


def test_no_overlap_when_asked_for_none() -> None:
    text = paragraph(random.Random(8), 30)
    chunks = chunk_document(doc_of(Section((), None, text)), max_tokens=80, overlap_tokens=0)
    assert " ".join(c.text for c in chunks) == text


SPANISH = ("¿Cuántos días de vacaciones tengo? ¡Depende de tu contrato! El Dr. García explicó "
           "que, p. ej., los contratos indefinidos dan 25 días. Pídelos con un mes de antelación… "
           "«Siempre por escrito», añadió. 3 días pueden pasar al año siguiente.")


def test_spanish_sentences_split_at_their_ends_only() -> None:
    assert split_sentences(SPANISH) == [
        "¿Cuántos días de vacaciones tengo?",
        "¡Depende de tu contrato!",
        "El Dr. García explicó que, p. ej., los contratos indefinidos dan 25 días.",
        "Pídelos con un mes de antelación…",
        "«Siempre por escrito», añadió.",
        "3 días pueden pasar al año siguiente.",
    ]
    # ¿ and ¡ open a sentence even before a small letter; a small letter after "?" does not.
    assert split_sentences("Vale. ¿y tú? ¡qué bien! ¿Vienes? sí, claro.") == [
        "Vale.", "¿y tú?", "¡qué bien!", "¿Vienes? sí, claro."]


def test_a_long_spanish_paragraph_is_cut_between_sentences() -> None:
    chunks = chunk_document(doc_of(Section((), None, " ".join([SPANISH] * 6))),
                            max_tokens=60, overlap_tokens=15)
    assert len(chunks) > 6
    for chunk in chunks:
        assert chunk.text[0] in "¿¡E«P3", chunk.text
        assert chunk.text[-1] in "?!.…", chunk.text


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    words = " ".join(f"word{n}" for n in range(300))
    chunks = chunk_document(doc_of(Section((), None, words + ".")), max_tokens=40,
                            overlap_tokens=10)
    assert all(estimate_tokens(c.text) <= 40 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        first = after.text.split(" ")[0]
        assert before.text.split(" ")[-1] != after.text.split(" ")[-1]
        assert f" {first} " in f" {before.text} "  # overlapping words
    assert {w for c in chunks for w in c.text.rstrip(".").split()} == set(words.split())


def test_a_giant_word_is_cut_into_pieces_that_fit() -> None:
    blob = "".join(chr(ord("a") + n % 26) for n in range(5000))
    doc = doc_of(Section((), None, f"Key follows. {blob} Done."))
    chunks = chunk_document(doc, max_tokens=100, overlap_tokens=20)
    assert all(estimate_tokens(c.text) <= 100 for c in chunks)
    pieces = [c.text for c in chunks if c.text != "Key follows."]
    assert "".join(pieces).replace(" Done.", "") == blob
    assert chunks[-1].text.endswith(" Done.")


def test_a_custom_counter_is_honoured() -> None:
    def words(text: str) -> int:
        return len(text.split())

    chunks = chunk_document(document(), max_tokens=25, overlap_tokens=5, count=words)
    assert all(words(c.text) <= 25 for c in chunks)
    assert max(words(c.text) for c in chunks) >= 20


def test_whitespace_is_collapsed_and_empty_text_dropped() -> None:
    doc = doc_of(Section(("Empty",), None, "  \n\n \t "),
                 Section((), 2, "  Lots   of\t\tspace\nhere.  \n\n\n\n  Next   one. "))
    assert chunk_document(doc) == [Chunk(0, None, 2, "Lots of space here.\nNext one.")]


def test_output_is_deterministic() -> None:
    doc = document(21)
    first = chunk_document(doc, max_tokens=90, overlap_tokens=30)
    assert first == chunk_document(doc, max_tokens=90, overlap_tokens=30)
    assert first == chunk_document(document(21), max_tokens=90, overlap_tokens=30)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_nonsense_sizes_are_refused(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_document(document(), max_tokens=max_tokens, overlap_tokens=overlap)
