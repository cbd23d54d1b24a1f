from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from shared.jwt_tokens import TokenSigner
from shared.logs import RedactingFilter, redact

JWT = TokenSigner(secret="s" * 40, audience="a", issuer="i").sign("alice", ttl_s=60)


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {JWT}",
        f"token={JWT} failed",
        "POST https://api.telegram.org/bot123456:AAH-secret_token/sendMessage",
    ],
)
def test_credentials_are_masked(text: str) -> None:
    cleaned = redact(text)
    assert "**********" in cleaned
    assert JWT not in cleaned
    assert "AAH-secret_token" not in cleaned


def test_filter_rewrites_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("charla.test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="charla.test.redact"):
        logger.info("calling with %s", f"Bearer {JWT}")
    assert JWT not in caplog.text
    assert "Bearer **********" in caplog.text


def test_configure_logging_redacts_every_line_and_traceback_on_its_own() -> None:
    # In a process of its own, as each entry point calls it: nothing attached by the test.
    script = (
        "import logging\n"
        "from shared.logs import configure_logging\n"
        "configure_logging('INFO')\n"
        "log = logging.getLogger('charla.anywhere')\n"
        f"log.warning('asked by ana.ruiz@example.com with Bearer {JWT}')\n"
        "try:\n"
        "    raise ValueError('card 4111 1111 1111 1111 refused')\n"
        "except ValueError:\n"
        "    log.exception('failed')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[2])
    err = done.stderr
    assert "failed" in err and "Traceback" in err  # the lines are there...
    assert "ana.ruiz@example.com" not in err and JWT not in err  # ...without what they carried
    assert "4111 1111 1111 1111" not in err
    assert "[EMAIL]" in err and "[CARD]" in err and "Bearer **********" in err
