"""Language detection picks Postgres text-search configurations: only sure guesses get a stemmer."""

from __future__ import annotations

import pytest

from shared.knowledge.language import detect

SPANISH = [
    "Los empleados tienen derecho a veinticinco días laborables de vacaciones al año. Las "
    "solicitudes se hacen en el portal de Recursos Humanos con al menos un mes de antelación, "
    "y el responsable del equipo debe aprobarlas antes de reservar cualquier viaje.",
    "Para reiniciar el servicio de pagos, conéctate al servidor de producción y ejecuta el "
    "script de despliegue. Si los errores continúan después de cinco minutos, avisa al equipo "
    "de guardia por el canal de incidencias.",
    "¿Dónde se guardan las copias de seguridad? En el almacenamiento cifrado de la oficina.",
    "El gasto máximo por noche de hotel es de 120 euros, salvo en Madrid y Barcelona.",
    "¿Cuántos días me quedan?",
]
ENGLISH = [
    "Employees are entitled to twenty-five working days of paid vacation each year. Requests "
    "are made in the HR portal at least one month in advance, and the team lead has to approve "
    "them before any travel is booked.",
    "To restart the payments service, connect to the production host and run the deploy "
    "script. If the errors persist after five minutes, page the on-call engineer in the "
    "incident channel.",
    "José Núñez is the head of the sales team and works in the Madrid office with his team.",
    "Where are the backups stored?",
]
UNCLEAR = [
    "",
    "ok",
    "hola",
    "Thanks!",
    "kubectl get pods -n production --watch",
    "SELECT id, name FROM users WHERE active = 1;",
    "2024-05-01 12:00:03 ERROR 503",
    # Half and half: neither stemmer would be right for all of it.
    "The meeting is tomorrow at the office. La reunión es mañana en la oficina.",
    # Other languages share "de", "la", "que" with Spanish but are not Spanish.
    "Le chat est sur la table de la cuisine et il mange une souris avec plaisir.",
    "O gato está em cima da mesa e não quer sair da cozinha com os outros gatos.",
    "Der Hund ist nicht in dem Haus und das ist gut für ihn.",
]


@pytest.mark.parametrize("text", SPANISH)
def test_spanish(text: str) -> None:
    assert detect(text) == "spanish"


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert detect(text) == "english"


@pytest.mark.parametrize("text", UNCLEAR)
def test_short_mixed_or_other_text_is_simple(text: str) -> None:
    assert detect(text) == "simple"


def test_case_and_layout_do_not_matter() -> None:
    assert detect(SPANISH[0].upper()) == "spanish"
    assert detect(ENGLISH[0].replace(" ", "\n  ")) == "english"


def test_a_long_text_is_judged_by_its_opening() -> None:
    assert detect(SPANISH[0] * 400 + ENGLISH[0] * 1000) == "spanish"
