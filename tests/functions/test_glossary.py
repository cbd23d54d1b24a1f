"""The glossary a team may edit (functions/glossary.txt) reads as it says: one meaning a line,
English words, then Spanish ones, each found from the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.glossary import (
    PLACES,
    SOURCE,
    UNIONS,
    _meanings,
    about,
    lies_in,
    senses,
    senses_of,
    translations,
)
from functions.quotes import content_keys


def test_every_line_of_words_has_both_languages() -> None:
    lines = [line.split("#", 1)[0] for line in SOURCE.read_text("utf-8").splitlines()]
    worded = [line for line in lines if line.strip()]
    assert all(line.count("|") == 1 for line in worded), [w for w in worded if w.count("|") != 1]
    assert len(_meanings()) == len(worded)
    for english, spanish in _meanings():
        assert english and spanish, (english, spanish)
        assert all(" " not in w for w in english + spanish), (english, spanish)  # single words


def test_a_word_and_its_translation_find_each_other() -> None:
    assert "pantalla" in translations("screen") and "screen" in translations("pantalla")
    assert "diem" in translations("dietas")
    assert "españa" in translations("Spain")  # as the glossary writes it: lower case
    assert translations("Boston") == []  # a name the glossary does not know: none


def test_words_of_one_meaning_share_it_and_unrelated_words_do_not() -> None:
    [screen] = content_keys("screen")
    [pantalla] = content_keys("pantalla")
    assert senses(screen) & senses(pantalla)
    assert not senses_of(content_keys("pantalla")) & senses_of(content_keys("wedding"))


@pytest.mark.parametrize("path", [PLACES, UNIONS], ids=["places", "unions"])
def test_every_line_names_places_then_what_they_lie_in(path: Path) -> None:
    """places.txt: cities, then their country; unions.txt: countries, then their union."""
    lines = [line.split("#", 1)[0] for line in path.read_text("utf-8").splitlines()]
    worded = [line for line in lines if line.strip()]
    assert worded and all(line.count(">") == 1 for line in worded)
    for line in worded:
        places, country = line.split(">")
        assert places.strip() and country.strip(), line
        assert all(p.strip() for p in places.split(",")), line
        assert all(c.strip() for c in country.split(",")), line


def test_a_city_lies_in_its_country_as_documents_write_it() -> None:
    us = lies_in("Boston")
    assert us is not None and us == lies_in("BOSTON")
    for text in ("Benefits and Payroll — US Employees", "viajes dentro de EE. UU.", "EE.UU.",
                 "in the United States", "Estados Unidos"):
        assert us.named_in(text), text
    for text in ("Tell us before you go", "USB sticks are blocked", "Gastos (España)"):
        assert not us.named_in(text), text
    spain = lies_in("Sevilla")
    assert spain is not None and spain.named_in("Gastos y viajes (España)")
    assert lies_in("Quito") is None  # a place the file does not list


def test_a_short_word_and_its_plural_have_one_key() -> None:
    for one, more in (("día", "días"), ("flag", "flags"), ("year", "years"), ("hora", "horas")):
        assert content_keys(one) == content_keys(more), (one, more)
    assert content_keys("bus") == {"bus"}  # 3 letters: no plural cut
    assert content_keys("vacaciones") == content_keys("vacación") == {"vacac"}


def test_a_country_is_about_its_union_and_a_city_is_not() -> None:
    italy = about("Italia")
    assert italy is not None
    for text in ("desde otro país de la Unión Europea", "within the EU", "la UE", "Roma"):
        assert italy(text), text
    assert not italy("Europe is large") and not italy("eu")  # "EU" only as written
    lisbon = about("Lisbon")
    assert lisbon is not None and not lisbon("la Unión Europea") and lisbon("Portugal")
    spain = about("Spain")
    assert spain is not None and spain("Gastos (España)") and spain("la Unión Europea")
