"""A best sentence about a sibling of what the question names is no answer to it
(functions/siblings.py): the evaluation set's Fenway, Prado, SEV2 and contractors' questions,
held-out 4's 2024 mileage rate, held-out 3's part-time PTO days."""

from __future__ import annotations

import pytest

from functions.answerability import answers
from shared.knowledge.search import Passage

ROOMS = ("The office has eight meeting rooms. The two large rooms are Fenway and Harbor; Harbor "
         "seats 10 and has the video bar used for calls with Madrid.")
SALAS = ("Las salas grandes se llaman Retiro y Prado; la sala Retiro tiene capacidad para 14 "
         "personas y pantalla doble.")
STATUS = ("Every SEV1 and SEV2 has an incident commander. For SEV1, the communications lead "
          "posts on the status page within 15 minutes and updates it every 30 minutes.")
MILEAGE = ("Personal car use is reimbursed at the IRS standard mileage rate, 70 cents per mile "
           "in 2025.")
PTO = "Full-time employees accrue 18 PTO days per calendar year, at 1.5 days per month."


def passage(content: str, source: str = "handbook.md") -> Passage:
    return Passage(chunk_id=1, document_id=1, collection="hr", source=source, title=None,
                   heading=None, page=None, content=content, distance=0.1, score=1.0)


@pytest.mark.parametrize(("question", "text", "other"), [
    ("How many people fit in the Fenway room?", ROOMS, ("harbor",)),
    ("¿Para cuántas personas es la sala Prado?", SALAS, ("retiro",)),
    ("For a SEV2, how often do we have to update the status page?", STATUS, ("SEV1",)),
    ("What was the mileage reimbursement rate for personal car use back in 2024?", MILEAGE,
     ("2025",)),
    ("How many PTO days do part-time employees get per year?", PTO, ("Full-time",)),
    ("How much does long-term disability cover?",
     "Short-term disability covers 60% of salary for up to 12 weeks.", ("Short-term",)),
    ("When do contractors in the US get paid?",
     "US employees are paid semi-monthly, on the 15th and on the last business day. Contractors "
     "send their invoices through the vendor portal.", ("employees",)),
    ("Soy autónoma, ¿qué día se pagan las facturas?",
     "Los empleados cobran la nómina el día 27 de cada mes. Las autónomas envían sus facturas "
     "por el portal de proveedores.", ("empleados",)),
    # a team: what engineers on call get is not what support folks do (a team or a role that
    # no passage names is missing: functions/answerability.py; here the passage names both)
    ("How much do support folks in Boston get paid for a week on call?",
     "Boston engineers on call receive a stipend of $250 per week. Support has a rotation of "
     "its own.", ("engineers",)),
    # a list item says its value of its label
    ("Acabo de ser madre, ¿cuántos días de permiso de lactancia me corresponden?",
     "Matrimonio o registro de pareja de hecho: 15 días naturales.",
     ("Matrimonio o registro de pareja de hecho",)),
    ("¿Cuántos días extra de vacaciones me dan por antigüedad cuando cumplo cinco años?",
     "Fallecimiento, accidente u hospitalización de un familiar hasta segundo grado: cinco "
     "días laborables.",
     ("Fallecimiento, accidente u hospitalización de un familiar hasta segundo grado",)),
])
def test_a_sentence_about_a_sibling_is_not_an_answer(question: str, text: str,
                                                     other: tuple[str, ...]) -> None:
    verdict = answers(question, [passage(text)])
    assert not verdict.answered and verdict.instead == other


@pytest.mark.parametrize(("question", "text"), [
    ("How many people fit in the Harbor room?", ROOMS),
    ("¿Para cuántas personas es la sala Retiro?", SALAS),
    ("For a SEV1, how often do we have to update the status page?", STATUS),
    ("What is the mileage reimbursement rate for personal car use in 2025?", MILEAGE),
    ("How many PTO days do full-time employees get per year?", PTO),
    # Both named, the sibling only in a clause of its own: the asked one's fact is stated.
    ("How much is the per diem in Madrid?",
     "Madrid and Boston travellers get a per diem of $60; Boston also gets $300 for hotels."),
    ("How often do we update the status page for a SEV2?",
     "For SEV1 and SEV2, the status page is updated every 30 minutes."),
    ("How many people fit in the Fenway room?",
     "The large rooms are Fenway and Harbor; Fenway seats 12 and Harbor seats 10."),
    ("When do contractors in the US get paid?",
     "US employees and contractors are paid on the 15th and on the last business day."),
    ("When do employees in the US get paid?",
     "US employees are paid semi-monthly, on the 15th and on the last business day."),
    ("How much do engineers in Boston get paid for a week on call?",
     "Boston engineers on call receive a stipend of $250 per week."),
    # A list item whose label shares a word with the question, as written or by meaning.
    ("Getting married! How many days of paid leave do Madrid employees get for a wedding?",
     "Matrimonio o registro de pareja de hecho (Madrid): 15 días naturales."),
    ("Me han convocado como jurado popular, ¿cuántos días me siguen pagando?",
     "Jury duty: full pay for up to 10 business days of service."),
    # A long sentence with a colon is no list item.
    ("¿Cuántos días de lactancia me corresponden?",
     "Para cualquier ausencia que se pida con antelación en Portal Gente y con el visto bueno "
     "del responsable del equipo: 15 días naturales."),
    # Compounds are siblings only with opposite first words: these say one thing twice.
    ("How do I turn on two-factor authentication for the VPN?",
     "Multi-factor authentication is required for the VPN: enable it in the Okta app."),
])
def test_a_sentence_about_what_is_asked_is_an_answer(question: str, text: str) -> None:
    verdict = answers(question, [passage(text)])
    assert verdict.answered and verdict.instead == (), verdict


@pytest.mark.timeout(60)
def test_a_long_question_of_codes_is_read_in_linear_time() -> None:
    """The question is client input, up to the request body's limit: reading its codes must
    not go back over the text from every hyphen (a 32,000-character "a-a-a-…" took 9 s, one of
    a megabyte would take hours)."""
    for filler in ("a-", "1-", "a1 "):
        question = "For a SEV2, how often? " + filler * 300_000
        assert not answers(question, [passage(STATUS)]).answered
