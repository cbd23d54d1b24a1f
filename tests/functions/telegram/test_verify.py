"""The webhook's secret-token check and the rules for a valid secret token."""

from __future__ import annotations

import pytest

from functions.telegram.verify import is_valid, valid_secret

SECRET = "s3cr3t_Token-for-charla"


def test_the_configured_secret_is_valid() -> None:
    assert is_valid(SECRET, SECRET)


@pytest.mark.parametrize("header", [None, "", "s3cr3t_Token-for-charl", SECRET + "x",
                                    SECRET.upper(), " " + SECRET, "ñ" + SECRET[1:]])
def test_anything_else_is_not(header: str | None) -> None:
    assert not is_valid(header, SECRET)


def test_an_empty_configured_secret_accepts_nothing() -> None:
    assert not is_valid("", "")
    assert not is_valid("anything", "")


@pytest.mark.parametrize("secret", ["a", "A-Z_a-z_0-9", "x" * 256, "-_-"])
def test_secret_tokens_telegram_accepts(secret: str) -> None:
    assert valid_secret(secret)


@pytest.mark.parametrize("secret", ["", "x" * 257, "has space", "dot.ted", "slash/", "ümlaut",
                                    "١٢٣", "new\nline", "colon:"])
def test_secret_tokens_telegram_refuses(secret: str) -> None:
    assert not valid_secret(secret)
