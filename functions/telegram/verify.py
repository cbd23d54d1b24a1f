"""Is a webhook delivery really from Telegram?

Telegram does not sign its deliveries. When the webhook is set with a ``secret_token``, every
delivery carries it back in the ``X-Telegram-Bot-Api-Secret-Token`` header
(https://core.telegram.org/bots/api#setwebhook), so the check is a constant-time comparison.
There is no timestamp in the header, hence no clock to inject and no replay window: replays are
caught by the one-reply-per-``update_id`` de-duplication instead.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

HEADER = "X-Telegram-Bot-Api-Secret-Token"

# setWebhook's secret_token: "1-256 characters. Only characters A-Z, a-z, 0-9, _ and - are
# allowed." Spelled out as ASCII classes because ``\w`` and ``\d`` also match non-ASCII.
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def valid_secret(secret: str) -> bool:
    """Whether Telegram would accept ``secret`` as setWebhook's ``secret_token``."""
    return _SECRET_TOKEN.fullmatch(secret) is not None


def is_valid(header: str | None, secret: str) -> bool:
    """Whether the delivery's secret-token ``header`` equals the configured ``secret``.

    A missing or empty header (or an empty configured secret) is never valid. The comparison
    runs in constant time so the secret cannot be guessed one character at a time.
    """
    if not header or not secret:
        return False
    return hmac.compare_digest(header.encode("utf-8"), secret.encode("utf-8"))


class SecretTokenVerifier:
    """:func:`is_valid` against the configured secret, in functions/platform.py's shape."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def check(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return is_valid(headers.get(HEADER), self._secret)
