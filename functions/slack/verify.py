"""Slack's request signature: the one check every delivery passes before its body is parsed.

Slack signs each request with the app's signing secret: ``X-Slack-Signature`` holds
``v0=`` + hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. Requests whose
timestamp is more than five minutes away from now are refused so that a recorded request
cannot be replayed later. https://api.slack.com/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping

VERSION = "v0"
MAX_SKEW_S = 300  # Slack's own window: five minutes either way

# Slack sends whole seconds since the epoch; anything else (signs, spaces, decimals, other
# scripts' digits, which int() would accept) is malformed.
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)


class SignatureVerifier:
    """Checks (and, for tests and tools, makes) Slack request signatures.

    ``clock`` returns the current Unix time in seconds; tests pass a frozen one.
    """

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        if not signing_secret:
            raise ValueError("the Slack signing secret is empty")
        self._key = signing_secret.encode()
        self._clock = clock

    def sign(self, body: bytes, timestamp: str) -> str:
        """The ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
        base = b"%s:%s:%s" % (VERSION.encode(), timestamp.encode(), body)
        return f"{VERSION}=" + hmac.new(self._key, base, hashlib.sha256).hexdigest()

    def check(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """:meth:`is_valid` on a delivery's own headers (functions/platform.py's shape)."""
        return self.is_valid(body, headers.get("x-slack-request-timestamp"),
                             headers.get("x-slack-signature"))

    def is_valid(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """Whether ``signature`` is Slack's for ``body`` and ``timestamp`` is recent.

        Missing or malformed headers give False, never an exception: the caller answers 401.
        """
        if not timestamp or not signature or not _TIMESTAMP.fullmatch(timestamp):
            return False
        if abs(self._clock() - int(timestamp)) > MAX_SKEW_S:
            return False
        if not signature.startswith(f"{VERSION}="):
            return False
        # Compare bytes: compare_digest refuses non-ASCII str, and a header is attacker input.
        expected = self.sign(body, timestamp).encode()
        return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
