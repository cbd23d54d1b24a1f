from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from shared import logs
from shared.redact import Redactor, default, find, redact
from shared.redact_findings import KINDS, Finding

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(regions=("ES", "US"))


@pytest.mark.parametrize(("text", "expected"), [
    ("Escríbeme a ana.garcia@example.es.", "Escríbeme a [EMAIL]."),
    ("Llámame al 612 345 678 o al +34 912 345 678.", "Llámame al [PHONE] o al [PHONE]."),
    ("Call (415) 555-2671 or +44 20 7946 0958", "Call [PHONE] or [PHONE]"),
    ("Tarjeta 4111 1111 1111 1111, caduca 12/27", "Tarjeta [CARD], caduca 12/27"),
    ("IBAN ES91 2100 0418 4502 0005 1332 para el pago", "IBAN [IBAN] para el pago"),
    ("DNI 52409069G y NIE X4475615E", "DNI [DNI] y NIE [NIE]"),
    ("SSN 123-45-6789 on file", "SSN [SSN] on file"),
    ("from 83.45.120.7 and 2001:db8::1.", "from [IP] and [IP]."),
    ("key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "key [SECRET] secret [SECRET]"),
    ("xoxb-2048193847-5501928374-Kq9mZx3VbN7pLs2TfR8wYu4H", "[SECRET]"),
    ("Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543", "Authorization: Bearer [SECRET]"),
    ("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbmEifQ.Xk2Y9rT1pLq8ZbN3vW6sHd0Fj7cAe5Gu;", "t=[SECRET];"),
    ("https://api.telegram.org/bot123456:AAH-secret_token/sendMessage",
     "https://api.telegram.org/bot[SECRET]/sendMessage"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY----- ok", "[SECRET] ok"),
])
def test_each_kind_gets_its_placeholder(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


@pytest.mark.parametrize("text", [
    "Pedido nº 612345678 enviado el 30/11/2026 a las 10:30.",
    "Order #100234 shipped on 2026-11-30; invoice INV-2026-0042 totals $1,234.56.",
    "El número 4111 1111 1111 1112 falla el dígito de control.",
    "ES91 2100 0418 4502 0005 1333 no es un IBAN válido.",
    "El 12345678A no es un DNI: la letra no cuadra.",
    "SSN 078-05-1120 and 666-12-3456 are never issued.",
    "Actualizad a la versión 10.4.2.1; v1.2.3.4 también.",
    "Listening on 127.0.0.1:8000 and [::1]:8001; bound to 0.0.0.0.",
    "Random 123 456 789, 555 000 0000 and 123-456-7890.",
    "Slices a[1::2], ratio 16:9, MAC 00:1A:2B:3C:4D:5E, at 10:30:00.",
    "The bearer of this letter may collect the parcel; token xoxb-test.",
    "Tracking 1Z999AA10123456784, ISBN 978-84-376-0494-7, @dataclass, @laura_gomez.",
    "update_id=912345678 chat_id=612345678 ts=1712345678.123456 at 2026-11-30 06:42:32,123",
    "",
])
def test_lookalikes_stay(redactor: Redactor, text: str) -> None:
    assert redactor.find(text) == []
    assert redactor.redact(text) == text


def test_find_reports_kinds_and_spans_in_order(redactor: Redactor) -> None:
    text = "ana@example.com, 612 345 678"
    assert redactor.find(text) == [Finding("EMAIL", 0, 15), Finding("PHONE", 17, 28)]


def test_overlaps_go_to_the_stronger_kind(redactor: Redactor) -> None:
    # The digits of an IBAN or an e-mail address are no phone number of their own.
    assert [f.kind for f in redactor.find("612345678@example.com")] == ["EMAIL"]
    assert [f.kind for f in redactor.find("ES91 2100 0418 4502 0005 1332")] == ["IBAN"]
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbmEifQ.Xk2Y9rT1pLq8ZbN3vW6sHd0Fj7cAe5Gu"
    assert redactor.find(f"Bearer {jwt}") == [Finding("SECRET", 7, 7 + len(jwt))]


def test_a_run_of_numbers_is_split_into_phones(redactor: Redactor) -> None:
    assert redactor.redact("612 345 678 600 123 456") == "[PHONE] [PHONE]"
    assert redactor.redact("Llama al 612 345 678. 600 123 456 es otro") == \
        "Llama al [PHONE]. [PHONE] es otro"


def test_regions_decide_bare_numbers_only() -> None:
    us = Redactor(regions=("US",))
    assert us.find("612 345 678") == []
    assert us.redact("+34 612 345 678 and 212-736-5000") == "[PHONE] and [PHONE]"


def test_kinds_and_placeholders_are_chosen() -> None:
    only_email = Redactor(kinds=("EMAIL",), placeholders={"EMAIL": "<e-mail>"})
    assert only_email.redact("ana@example.com 612 345 678") == "<e-mail> 612 345 678"
    with pytest.raises(ValueError, match="unknown kinds"):
        Redactor(kinds=("NAME",))
    with pytest.raises(ValueError, match="unknown phone region"):
        Redactor(regions=("XX",))


def test_module_functions_share_one_redactor() -> None:
    assert default() is default()
    assert redact("ana@example.com") == "[EMAIL]"
    assert [f.kind for f in find("ana@example.com")] == ["EMAIL"]
    assert set(KINDS) == {"SECRET", "EMAIL", "IBAN", "CARD", "SSN", "DNI", "NIE", "IP", "PHONE"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", [
    "1 " * 50_000, "21 " * 33_000, "a." * 50_000 + "@", "a:" * 50_000 + "g", "x@" + "a." * 50_000,
    "-----BEGIN PRIVATE KEY-----" * 4_000, "eyJ" * 30_000, "xoxb-" * 20_000,
    "AKIAIOSFODNN7EXAMPLE " * 5_000, "4111 1111 1111 1111 " * 5_000, "ES91 " * 20_000,
])
def test_long_hostile_input_stays_linear(redactor: Redactor, text: str) -> None:
    redactor.find(text)  # finishes well inside the timeout: no catastrophic backtracking


def test_import_is_light_and_nothing_reaches_the_network() -> None:
    """In a fresh interpreter: importing loads no validation library; building and using the
    redactor opens no socket and resolves no name."""
    script = """
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:80])
    raise OSError("no network in this test")
socket.getaddrinfo = socket.create_connection = socket.socket.connect = refuse
import shared.redact
light = not any(m in sys.modules for m in ("phonenumbers", "stdnum"))
out = shared.redact.redact("ana@example.com 612 345 678 ES91 2100 0418 4502 0005 1332")
print(json.dumps({"light": light, "attempts": attempts, "out": out}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=60)
    result = json.loads(done.stdout)
    assert result == {"light": True, "attempts": [], "out": "[EMAIL] [PHONE] [IBAN]"}


# --- log lines (shared/logs.py uses the redactor) --------------------------------------------

def test_log_lines_lose_personal_data_and_keep_the_credential_mask() -> None:
    line = logs.redact("user ana@example.com (612 345 678) sent Bearer abcdefghij from 10.1.2.3")
    assert line == "user [EMAIL] ([PHONE]) sent Bearer ********** from [IP]"


def test_log_filter_redacts_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("charla.test.redact.exc")
    logger.addFilter(logs.RedactingFilter())
    with caplog.at_level(logging.ERROR, logger=logger.name):
        try:
            raise ValueError("no account for ana@example.com")
        except ValueError:
            logger.exception("lookup failed for %s", "4111 1111 1111 1111")
    assert "ana@example.com" not in caplog.text
    assert "4111 1111 1111 1111" not in caplog.text
    assert "[EMAIL]" in caplog.text and "[CARD]" in caplog.text
