"""Checks the bilingual evaluation set itself, not the product (see ``eval/README.md``).

A recall figure is only as good as the set behind it: an answer phrase that appears in two
places makes a wrong passage count as a hit, a missing source makes a question unanswerable,
and a lopsided language split hides how cross-lingual retrieval really does. These tests keep
the set honest as documents and questions are edited. They read the text files directly and
take the .docx and .pdf text from their generator script; the product's parser is not used.

Each answerable question also names its ``fact``, the short part of the answer phrase that a
generated answer must contain. Unanswerable questions come in two kinds: off-topic ones, and
near-topic ones whose ``near`` document is on the same subject but does not hold the fact.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EVAL = Path(__file__).resolve().parent / "eval"
DOCS = EVAL / "docs"
TEXT_SUFFIXES = frozenset({".md", ".txt", ".html"})
BINARY_SUFFIXES = frozenset({".docx", ".pdf"})
LANGS = ("es", "en")

ANSWERABLE_KEYS = {"id", "lang", "question", "source", "answer_contains", "fact", "fact_kind"}
UNANSWERABLE_KEYS = {"id", "lang", "question", "source", "near"}
FACT_KINDS = frozenset({"number", "date", "amount", "name", "phrase"})

# Short function words that are frequent in one language and rare in the other; enough to tell
# a policy document's language, and with the extra signals below, a chat question's.
SPANISH_WORDS = frozenset({
    "el", "la", "los", "las", "de", "del", "que", "y", "en", "un", "una", "por", "para", "con",
    "se", "es", "al", "lo", "mi", "me", "tengo", "hay", "cuánto", "cuántos", "cuándo", "qué",
    "quién", "cómo", "dónde", "si",
})
ENGLISH_WORDS = frozenset({
    "the", "of", "and", "to", "is", "for", "on", "with", "your", "you", "are", "be", "it", "do",
    "does", "i", "my", "can", "what", "when", "how", "who", "where", "at", "get", "in", "if",
})
SPANISH_MARKS = frozenset("¿¡áéíóúñ")


def normalize(text: str) -> str:
    """Collapse runs of whitespace and fold case, as a reader comparing passages would."""
    return " ".join(text.split()).casefold()


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, which is what ingestion keeps of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "title"}:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "title"}:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return " ".join(parser.parts)


@cache
def generator() -> ModuleType:
    """The script that writes the .docx and .pdf; its data is their text."""
    path = EVAL / "make_binary.py"
    spec = importlib.util.spec_from_file_location("evalset_make_binary", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def corpus() -> dict[str, str]:
    """Each document's name and its text: files as they are, binaries from the generator."""
    gen = generator()
    binary_text = {gen.DOCX_NAME: gen.docx_text(), gen.PDF_NAME: gen.pdf_text()}
    texts: dict[str, str] = {}
    for path in sorted(DOCS.iterdir()):
        if path.suffix in TEXT_SUFFIXES:
            texts[path.name] = path.read_text(encoding="utf-8")
        elif path.suffix in BINARY_SUFFIXES:
            texts[path.name] = binary_text[path.name]
        else:
            raise AssertionError(f"{path.name}: not a type the product ingests")
    return texts


@cache
def questions() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((EVAL / "questions.json").read_text("utf-8"))
    return items


def answerable() -> list[dict[str, Any]]:
    return [q for q in questions() if q.get("source") is not None]


def unanswerable() -> list[dict[str, Any]]:
    return [q for q in questions() if q.get("source") is None]


def near_topic() -> list[dict[str, Any]]:
    """Unanswerable questions that a search would match to a passage on the same subject."""
    return [q for q in unanswerable() if q.get("near") is not None]


def off_topic() -> list[dict[str, Any]]:
    """Unanswerable questions about things that no document mentions at all."""
    return [q for q in unanswerable() if q.get("near") is None]


def language(text: str) -> tuple[str, float]:
    """Guess Spanish or English; also return how sure, as the winner's share of the votes."""
    words = re.findall(r"\w+", text.casefold())
    es = sum(w in SPANISH_WORDS for w in words) + 2 * sum(c in SPANISH_MARKS for c in text)
    en = sum(w in ENGLISH_WORDS for w in words)
    total = max(es + en, 1)
    return ("es", es / total) if es > en else ("en", en / total)


def doc_language(name: str) -> str:
    lang, share = language(visible_text(corpus()[name]) if name.endswith(".html")
                           else corpus()[name])
    assert share >= 0.75, f"{name} reads as a mix of languages ({share:.0%} {lang})"
    return lang


def test_items_have_the_agreed_shape() -> None:
    ids = [q["id"] for q in questions()]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for q in questions():
        keys = ANSWERABLE_KEYS if q.get("source") is not None else UNANSWERABLE_KEYS
        assert set(q) == keys, q["id"]
        assert re.fullmatch(r"q\d{2,3}", q["id"]), q["id"]
        assert q["lang"] in LANGS, q["id"]
        assert isinstance(q["question"], str) and q["question"].strip(), q["id"]


def test_there_are_enough_questions_of_each_kind() -> None:
    assert len(answerable()) >= 48
    assert 5 <= len(off_topic()) <= 8
    assert {q["lang"] for q in off_topic()} == set(LANGS)
    assert len(near_topic()) >= 20
    counts = Counter(q["lang"] for q in near_topic())
    assert all(counts[lang] >= 10 for lang in LANGS), counts


def test_every_source_is_a_document_of_the_corpus() -> None:
    for q in answerable():
        assert q["source"] in corpus(), f"{q['id']}: no document {q['source']}"
        assert (DOCS / q["source"]).is_file()


@pytest.mark.parametrize("item", answerable(), ids=lambda q: str(q["id"]))
def test_answer_phrase_occurs_once_in_the_whole_corpus(item: dict[str, Any]) -> None:
    phrase = normalize(item["answer_contains"])
    assert 3 <= len(phrase.split()) <= 12, f"{item['id']}: phrase of {len(phrase.split())} words"
    where = {name: normalize(text).count(phrase) for name, text in corpus().items()}
    found = {name: n for name, n in where.items() if n}
    assert found == {item["source"]: 1}, f"{item['id']}: {item['answer_contains']!r} in {found}"


@pytest.mark.parametrize("item", answerable(), ids=lambda q: str(q["id"]))
def test_answer_phrase_survives_markup(item: dict[str, Any]) -> None:
    # Ingestion drops HTML tags and entities; a phrase that spans one would never be found.
    source = item["source"]
    if source.endswith(".html"):
        text = visible_text(corpus()[source])
        assert normalize(item["answer_contains"]) in normalize(text), item["id"]


@pytest.mark.parametrize("item", answerable(), ids=lambda q: str(q["id"]))
def test_fact_is_a_short_part_of_the_answer_phrase(item: dict[str, Any]) -> None:
    fact, phrase = item["fact"], item["answer_contains"]
    assert isinstance(fact, str) and fact.strip() == fact and fact, item["id"]
    # Exact, with case and accents: the fact is copied from the phrase, not retyped.
    assert fact in phrase, f"{item['id']}: {fact!r} not in {phrase!r}"
    assert len(fact) < len(phrase) and len(fact.split()) <= 4, f"{item['id']}: {fact!r}"
    # Whole words only, so that "5" cannot stand for the end of "15".
    assert re.search(rf"(?<!\w){re.escape(fact)}(?!\w)", phrase), f"{item['id']}: {fact!r}"
    assert item["fact_kind"] in FACT_KINDS, f"{item['id']}: {item['fact_kind']!r}"
    if item["fact_kind"] == "amount":
        assert re.search(r"\d", fact), f"{item['id']}: an amount without a figure"


def test_only_answerable_questions_have_a_fact() -> None:
    for q in unanswerable():
        assert "fact" not in q and "fact_kind" not in q, q["id"]
        assert "answer_contains" not in q, q["id"]


def test_every_unanswerable_question_names_its_near_miss_or_none() -> None:
    for q in unanswerable():
        assert "near" in q, q["id"]
        assert q["near"] is None or q["near"] in corpus(), f"{q['id']}: no document {q['near']}"
    for q in answerable():
        assert "near" not in q, q["id"]


def test_near_topic_questions_are_distinct() -> None:
    ids = Counter(q["id"] for q in near_topic())
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1]
    # A near-topic question must not repeat any other question of the set, in any kind.
    texts = Counter(normalize(q["question"]) for q in questions())
    assert [q["id"] for q in near_topic() if texts[normalize(q["question"])] > 1] == []


def test_questions_do_not_quote_their_answer() -> None:
    for q in answerable():
        assert normalize(q["answer_contains"]) not in normalize(q["question"]), q["id"]


def test_questions_are_written_in_their_stated_language() -> None:
    wrong = [q["id"] for q in questions() if language(q["question"])[0] != q["lang"]]
    assert not wrong


def test_half_the_questions_are_in_each_language() -> None:
    for items in (answerable(), near_topic(), off_topic()):
        counts = Counter(q["lang"] for q in items)
        assert counts["es"] == counts["en"], counts


def test_about_a_quarter_are_asked_across_languages() -> None:
    crossed = Counter(
        (q["lang"], doc_language(q["source"])) for q in answerable()
        if q["lang"] != doc_language(q["source"]))
    share = sum(crossed.values()) / len(answerable())
    assert 0.2 <= share <= 0.3, f"{share:.0%} cross-lingual"
    # Both directions, roughly balanced: Spanish asking English documents and the reverse.
    es_to_en, en_to_es = crossed[("es", "en")], crossed[("en", "es")]
    assert es_to_en and en_to_es and max(es_to_en, en_to_es) <= 2 * min(es_to_en, en_to_es)


def test_corpus_is_half_spanish_half_english() -> None:
    langs = Counter(doc_language(name) for name in corpus())
    assert 14 <= len(corpus()) <= 20
    assert langs["es"] == langs["en"], langs


def test_corpus_covers_every_ingested_format_mostly_markdown() -> None:
    kinds = Counter(Path(name).suffix for name in corpus())
    assert set(kinds) == TEXT_SUFFIXES | BINARY_SUFFIXES, kinds
    assert kinds[".md"] > len(corpus()) / 2, kinds


def test_every_document_is_asked_about() -> None:
    asked = Counter(q["source"] for q in answerable())
    assert {name: asked[name] for name in corpus() if asked[name] < 2} == {}


def _headings(name: str, text: str) -> list[str]:
    gen = generator()
    if name == gen.DOCX_NAME:
        return [heading for heading, _ in gen.DOCX_SECTIONS]
    if name == gen.PDF_NAME:
        return [heading for page in gen.PDF_PAGES for heading, _ in page]
    if name.endswith(".md"):
        return re.findall(r"^##+ (.+)$", text, flags=re.MULTILINE)
    if name.endswith(".html"):
        return re.findall(r"<h[2-6][^>]*>(.*?)</h[2-6]>", text, flags=re.DOTALL)
    # Plain text: a section title is a line of capitals (digits and punctuation allowed).
    return re.findall(r"^(?=.*[A-ZÁÉÍÓÚÑ])[A-ZÁÉÍÓÚÑ0-9 .:,()-]{4,}$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("name", sorted(corpus()))
def test_documents_have_several_headed_sections(name: str) -> None:
    assert len(_headings(name, corpus()[name])) >= 4, name


def test_docx_holds_the_generator_text() -> None:
    import docx  # the product's own dependency; only the committed file is read

    gen = generator()
    document = docx.Document(str(DOCS / gen.DOCX_NAME))
    paragraphs = [p.text for p in document.paragraphs if p.text.strip()]
    assert paragraphs == gen.docx_text().split("\n"), "run make_binary.py again"
    styles = {p.text: p.style.name for p in document.paragraphs if p.style is not None}
    assert all(styles[h] == "Heading 1" for h, _ in gen.DOCX_SECTIONS)


def test_pdf_holds_the_generator_text_page_by_page() -> None:
    import pypdf

    gen = generator()
    reader = pypdf.PdfReader(DOCS / gen.PDF_NAME)
    assert len(reader.pages) == len(gen.PDF_PAGES), "run make_binary.py again"
    for number, (page, sections) in enumerate(zip(reader.pages, gen.PDF_PAGES, strict=True)):
        text = normalize(page.extract_text())
        for heading, paragraphs in sections:
            for part in (heading, *paragraphs):
                assert normalize(part) in text, f"page {number + 1}: {part[:40]!r}"


def test_binaries_stay_small() -> None:
    for suffix in BINARY_SUFFIXES:
        for path in DOCS.glob(f"*{suffix}"):
            assert path.stat().st_size < 64_000, path.name
