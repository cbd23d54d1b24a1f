from __future__ import annotations

import logging

import pytest

from shared.logs import RedactingFilter, redact
from shared.tokens import TokenSigner

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
