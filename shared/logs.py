"""Logging set-up for every entry point: quiet HTTP clients, no secrets or personal data.

HTTP client libraries log every request URL at INFO; Telegram's bot token is part of every Bot
API URL, so those loggers are held at WARNING. A filter masks anything that looks like a bearer
token or a JWT, in case a message or an exception's text carries one, and replaces personal
data (e-mail addresses, phone numbers, cards, IBANs, DNI/NIE, SSNs, IP addresses) and other
credentials with typed placeholders, using :mod:`shared.redact`.
"""

from __future__ import annotations

import logging
import re
from functools import cache

from shared.redact import Redactor

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"),  # Telegram: the bot token is in every URL
    re.compile(r"(/webhooks/[^/\s]+/)[^/\s?#\"']+"),  # Discord: the interaction token
)
HTTP_LOGGERS = ("httpx", "httpcore")


MASK = "**********"


@cache
def _redactor() -> Redactor:
    # Built on the first log line, not at import: it loads the validation libraries.
    return Redactor(placeholders={"SECRET": MASK})


def redact(text: str) -> str:
    """Mask bearer tokens, JWTs, Telegram bot tokens and Discord interaction tokens, then
    replace personal data and other credentials (``[EMAIL]``, ``[PHONE]``, ``**********``)."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return _redactor().redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, and its exception and stack text, with :func:`redact`
    applied: an exception's message can carry what a user typed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


_HTTP_FILTER = RedactingFilter()


def protect_http_logs() -> None:
    """Mask secrets in HTTP client loggers' own records, whatever handler gets them.

    The clients whose URLs carry a secret (Telegram, Discord) call this when built, so even a
    DEBUG log set up by someone else never shows the token.
    """
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _HTTP_FILTER not in logger.filters:
            logger.addFilter(_HTTP_FILTER)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in (*HTTP_LOGGERS, "httpx2", "huggingface_hub", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    protect_http_logs()
