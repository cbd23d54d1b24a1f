"""The fact check: what an answer states must be in the passages it drew on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from functions.extractive import extract, no_answer, quoted_answer
from functions.factcheck import FactGate, check, evidence
from functions.quotes import sentences, shortened, supporting
from shared.knowledge.search import Passage

EVAL = Path(__file__).resolve().parents[1] / "knowledge" / "eval"
LISBON = "Every employee of the Lisbon office has 27 days of paid vacation per year."
QUITO = "El código de acceso del laboratorio de Quito es 7319."


def passage(content: str, source: str = "policy.md", rank: int = 0) -> Passage:
    return Passage(chunk_id=rank + 1, document_id=1, collection="hr", source=source,
                   title=None, heading=None, page=None, content=content, distance=0.1,
                   score=1.0 / (rank + 1))


@pytest.mark.parametrize("answer", [
    "[1] In 2022, Lisbon employees have 24 days of paid vacation per year.",  # the issue's
    "Lisbon employees have 37 days of paid vacation.",
    "Every employee of the Lisbon office has 27 days of paid vacation per month, São José.",
    "Employees in the Porto office have 27 days.",  # a name the passage does not give
    "You get twenty-seven days, \"fully paid leave\".",  # a quote that is not in it
    "Lisbon staff get 27 days, 4 of them in May.",
])
def test_an_answer_with_a_fact_the_passage_does_not_state_is_caught(answer: str) -> None:
    assert not check(answer, [LISBON]).supported


@pytest.mark.parametrize("answer", [
    "Every employee of the Lisbon office has 27 days of paid vacation per year [1].",
    "In the Lisbon office you get 27 days of paid vacation a year.",
    "27 days.",
    "You have twenty-seven days? No: the policy says 27 days of paid vacation.",
])
def test_an_answer_that_says_what_the_passage_says_passes(answer: str) -> None:
    verdict = check(answer, [LISBON])
    assert verdict.supported, verdict
    assert "27" in verdict.facts


def test_a_missing_code_is_caught_and_the_right_one_passes() -> None:
    assert not check("El código de acceso del laboratorio de Quito es 1.", [QUITO]).supported
    assert check("El código del laboratorio de Quito es 7319 [1].", [QUITO]).supported
    assert not check("El código es 7391.", [QUITO]).supported


@pytest.mark.parametrize(("answer", "source", "supported"), [
    ("Se pagan 0.26 € por kilómetro.", "se pagan 0,26 € por kilómetro", True),
    ("Se pagan 0,62 € por kilómetro.", "se pagan 0,26 € por kilómetro", False),
    ("Up to $1500 a year.", "up to $1,500 per year on courses", True),
    ("Up to €1,500 a year.", "up to $1,500 per year on courses", False),  # the currency
    ("Up to 1,500 dollars a year.", "up to $1,500 per year on courses", True),
    ("It matches up to 4 % of your salary.", "up to 4% of your salary", True),
    ("Tienes seis meses de prueba.", "six months for graduate roles", True),
    ("You get 6 months.", "seis meses para puestos técnicos", True),
    ("Paid on the 15th.", "on the 15th and on the last business day", True),
    ("Paid on the 16th.", "on the 15th and on the last business day", False),
    ("Te esperamos a las 09:30.", "Te esperamos a las 9:30 en la recepción", True),
    ("Te esperamos a las 10:30.", "Te esperamos a las 9:30 en la recepción", False),
    ("The handover is on Monday.", "el relevo se hace el lunes a las 10:00", True),
    ("The handover is on Tuesday.", "el relevo se hace el lunes a las 10:00", False),
    ("Hasta el 31 de marzo.", "until March 31 of the next year", True),
    ("Hasta el 31 de abril.", "until March 31 of the next year", False),
    ("You may take a day if you need it.", "nothing about months here", True),  # "may"
    ("Run it with --dry-run first.", "acmectl db failover --dry-run", True),
    ("Run it with --force first.", "acmectl db failover --dry-run", False),
    ("Page it as SEV2.", "A SEV2 is a partial outage", True),
    ("Page it as SEV1.", "A SEV2 is a partial outage", False),
    ("Write to privacidad@acme-iberica.com.", "a privacidad@acme-iberica.com", True),
    ("Write to privacy@acme-iberica.com.", "a privacidad@acme-iberica.com", False),
    ("Changes under `payments/` need two approvals.", "payments/ or auth/ needs two approvals",
     True),
    ("Changes need three approvals.", "payments/ or auth/ needs two approvals", False),
    ("Ask Tom Becker in the channel.", "ask Tom Becker in #sre-access", True),
    ("Ask Tom Baker in the channel.", "ask Tom Becker in #sre-access", False),
    ("It covers PTO only.", "accrue 18 PTO days", True),
    ("It covers HSA only.", "accrue 18 PTO days", False),
    ("Llama al +34 910 555 199.", "llama al +34 910 555 199 en menos de una hora", True),
    ("Llama al +34 910 555 919.", "llama al +34 910 555 199 en menos de una hora", False),
    ("Ask in #sre-access, I'm told, OK.", "ask Tom Becker in #sre-access", True),
])
def test_facts_are_compared_by_what_they_mean(answer: str, source: str, supported: bool) -> None:
    assert check(answer, [source]).supported is supported, check(answer, [source])


def test_a_name_from_the_question_alone_is_not_evidence() -> None:
    """Only the passages count: the question named Lisbon, the passage is about Madrid."""
    madrid = "Cada persona de la oficina de Madrid tiene 23 días laborables de vacaciones."
    verdict = check("En la oficina de Lisboa tienes 23 días laborables.", [madrid])
    assert verdict.unsupported == ("Lisboa",)


def test_a_name_that_opens_a_sentence_is_not_taken_for_a_fact() -> None:
    assert check("Yes. Every employee has 27 days.\n- Vacation is paid.", [LISBON]).supported


def test_several_passages_are_evidence_together() -> None:
    assert check("Lisbon has 27 days and the code is 7319.", [LISBON, QUITO]).supported


def _eval() -> list[dict[str, str]]:
    items: list[dict[str, str]] = json.loads((EVAL / "questions.json").read_text())
    return [q for q in items if q["source"] and not q["source"].endswith((".docx", ".pdf"))]


def _paragraph(document: str, phrase: str) -> str:
    """The paragraph of ``document`` holding ``phrase``: about what a passage holds."""
    squeeze = " ".join
    for paragraph in re.split(r"\n\s*\n", document):
        if squeeze(phrase.split()) in squeeze(paragraph.split()):
            return paragraph
    raise AssertionError(f"{phrase!r} is in no paragraph")


def _changed(fact: str, paragraph: str) -> str | None:
    """``fact`` with its first number changed to one ``paragraph`` does not hold."""
    m = re.search(r"\d+", fact)
    if m is None:
        return None
    held = set(re.findall(r"\d+", paragraph))
    other = next(str(n) for n in range(int(m.group(0)) + 1, 10_000) if str(n) not in held)
    return fact[:m.start()] + other + fact[m.end():]


@pytest.mark.parametrize("item", _eval(), ids=lambda q: q["id"])
def test_each_eval_answer_is_supported_by_its_passage_and_a_wrong_figure_is_not(
    item: dict[str, str]
) -> None:
    """The eval set's answer phrases against the paragraphs that hold them: said as the
    document says them they pass; with the figure changed they fail."""
    phrase = item["answer_contains"]
    paragraph = _paragraph((EVAL / "docs" / item["source"]).read_text(), phrase)
    assert check(f"Según la política, {phrase} [1].", [paragraph]).supported, \
        check(phrase, [paragraph])
    wrong = _changed(item["fact"], paragraph)
    if wrong is not None:
        answer = phrase.replace(item["fact"], wrong)
        assert not check(f"Según la política, {answer} [1].", [paragraph]).supported


def test_the_extract_is_the_sentence_that_answers_from_the_best_passage() -> None:
    found = [passage("Vacation requests go through Workday. Every employee of the Lisbon "
                     "office has 27 days of paid vacation per year. Sick days are separate.",
                     "vacations.txt"),
             passage("The Lisbon office opens at 9:00.", "office.md", rank=1)]
    extract_ = extract("How many vacation days do Lisbon employees get?", found)
    assert extract_ is not None
    assert extract_.sentence == LISBON
    assert extract_.passage.source == "vacations.txt"
    answer = quoted_answer("How many vacation days do Lisbon employees get?", extract_)
    assert answer == f'According to vacations.txt: "{LISBON}"'
    assert check(answer, [p.content for p in found]).supported  # the quote is its own proof
    spanish = quoted_answer("¿Cuántos días de vacaciones tienen en Lisboa?", extract_)
    assert spanish.startswith("Según vacations.txt: «Every employee")


def test_no_extract_when_no_sentence_shares_a_word_with_the_question() -> None:
    assert extract("¿Puedo traer a mi perro?", [passage(LISBON)]) is None
    assert no_answer("¿Puedo traer a mi perro?", [passage(LISBON, "vacations.txt")]) == (
        "No lo sé: los documentos no lo dicen. Lo más cercano: vacations.txt.")


def test_sentences_keep_their_figures_and_drop_list_markers() -> None:
    text = ("# Vacaciones\n\n- **23 días** laborables al año.\n"
            "1. Se piden en Workday. Luego se aprueban.")
    assert sentences(text) == ["23 días laborables al año.", "Se piden en Workday.",
                               "Luego se aprueban."]


def test_the_gate_lets_through_whole_checked_sentences_only() -> None:
    gate = FactGate([LISBON, QUITO])
    answer = ""
    shown = []
    for piece in ["Lisbon staff", " have 27", " days a year.", " The code is 7",
                  "319.", " Ask them", " in Lisbon."]:
        answer += piece
        assert gate.feed(answer) is None
        shown.append(answer[:gate.checked].rstrip())
    # A stop is a sentence's end once what follows it shows it is not a decimal point.
    assert shown == ["", "", "", "Lisbon staff have 27 days a year.",
                     "Lisbon staff have 27 days a year.",
                     "Lisbon staff have 27 days a year. The code is 7319.",
                     "Lisbon staff have 27 days a year. The code is 7319."]
    assert gate.feed(answer, whole=True) is None
    assert gate.checked == len(answer)


def test_the_gate_stops_at_the_first_sentence_with_a_fact_not_in_the_passages() -> None:
    gate = FactGate([QUITO])
    assert gate.feed("El código es 7319. Se cambia cada 3") is None
    assert gate.checked == len("El código es 7319. ")  # the space after it too
    verdict = gate.feed("El código es 7319. Se cambia cada 3 meses. Pregunta a Ana.")
    assert verdict is not None and verdict.unsupported == ("3",)
    assert gate.checked == len("El código es 7319. ")  # nothing more is shown
    assert gate.feed("El código es 7319. Se cambia cada 3 meses.", whole=True) is verdict


def test_a_decimal_point_at_the_end_is_not_a_sentence_end() -> None:
    gate = FactGate(["se pagan 0,26 € por kilómetro"])
    assert gate.feed("Se pagan 0.") is None and gate.checked == 0
    assert gate.feed("Se pagan 0.26 € por kilómetro. ") is None
    assert gate.checked == len("Se pagan 0.26 € por kilómetro. ")


def test_a_wrapped_paragraph_is_one_sentence_and_a_list_is_one_per_item() -> None:
    text = ("Every employee of the Lisbon office has 27 days of\npaid vacation per year.\n"
            "- Requests go\n  through the portal.\n- Approvals take a day.")
    assert sentences(text) == [LISBON, "Requests go through the portal.",
                               "Approvals take a day."]


def test_a_list_run_into_one_line_is_one_sentence_per_item_and_a_heading_none() -> None:
    """What a converter leaves of a plain-text document: items after a stop and " - ", and
    headings in capitals on lines of their own."""
    text = ("2. EL PORTÁTIL\n- El disco va cifrado siempre. Un equipo sin cifrar no entra. "
            "- La pantalla se bloquea sola tras 5 minutos. - Nadie es administrador.\n"
            "PRODUCTION ACCESS\nNobody gets production access by default.\n"
            "Deploys run 09:00 - 16:00 on weekdays.")
    assert sentences(text) == [
        "El disco va cifrado siempre.", "Un equipo sin cifrar no entra.",
        "La pantalla se bloquea sola tras 5 minutos.", "Nadie es administrador.",
        "Nobody gets production access by default.", "Deploys run 09:00 - 16:00 on weekdays."]
    # A line in capitals with a figure in it is not a heading.
    assert sentences("PTO IS 23 DAYS A YEAR") == ["PTO IS 23 DAYS A YEAR"]


def test_the_supporting_sentence_is_the_one_with_the_answers_figures_and_words() -> None:
    found = passage("Vacation requests go through the HR portal. " + LISBON
                    + " Unused days expire at the end of March.")
    assert supporting("You get 27 days a year.", "How many days?", found) == LISBON
    assert supporting("They expire in March.", "", found) == (
        "Unused days expire at the end of March.")
    assert supporting("", "Where do I send my vacation requests?", found) == (
        "Vacation requests go through the HR portal.")
    assert supporting("Bring a dog.", "Pets?", found) is None
    # An answer with a figure is supported by no sentence stating another one.
    madrid = passage("Cada persona tiene un presupuesto de 1.000 € al año para cursos y "
                     "conferencias.")
    assert supporting("Each employee can spend up to $1,500 per year on conferences.",
                      "¿Cuánto tengo al año para formación?", madrid) is None
    assert supporting("Tienes 1.000 € al año para cursos.", "¿Cuánto para formación?",
                      madrid) == madrid.content
    courses = passage("El presupuesto cubre cursos y conferencias.")
    assert supporting("The budget covers courses and conferences [1].", "", courses) == (
        courses.content)  # a reference to a source is not a figure


def test_a_long_quote_is_shortened_at_a_word() -> None:
    assert shortened("word " * 50, 30) == "word word word word word word…"
    assert shortened("short", 30) == "short"


def test_where_a_passage_comes_from_is_evidence_too() -> None:
    """A quote shown under its source's name passes the check it replaced an answer for."""
    found = Passage(chunk_id=1, document_id=1, collection="hr", source="docs/pto-boston.md",
                    title="Time Off Policy", heading="Time Off Policy › Unused days", page=2,
                    content="You may roll over up to 5 unused PTO days.", distance=0.1,
                    score=1.0)
    question = "How many PTO days can I roll over?"
    extract_ = extract(question, [found])
    assert extract_ is not None
    answer = quoted_answer(question, extract_)
    assert answer.startswith("According to pto-boston.md › Time Off Policy › Unused days, p. 2")
    assert check(answer, evidence(found)).supported
    assert not check(answer, [found.content]).supported  # the section's name is not in the text


def test_a_very_long_digit_run_is_compared_as_written() -> None:
    """Python refuses to read over 4,300 digits as a number: a document or an answer holding
    such a run must not break the check (a 500 for every answer drawn from that document)."""
    key = "7" * 5000
    assert check(f"The key is {key}.", [f"The key is {key}."]).supported
    assert not check(f"The key is {key}8.", [f"The key is {key}."]).supported
    assert check("It has 27 days.", [f"{key} " + LISBON]).supported
