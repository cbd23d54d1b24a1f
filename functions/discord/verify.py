"""Discord's request signature: Ed25519 over ``X-Signature-Timestamp`` + the raw body.

Discord signs every interaction it sends with the application's key pair and expects a 401 for
any request whose signature does not check out (it sends deliberately bad ones to test this):
https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers

Discord itself gives no window for the timestamp, so :class:`SignatureVerifier` adds one
(``max_age_s``, 5 minutes by default, like Slack's) to refuse a captured request replayed later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.errors import ConfigError

_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
# A Unix time in seconds has 10 digits until the year 2286; 20 leaves room and keeps int()
# away from absurdly long digit strings.
_MAX_TIMESTAMP_DIGITS = 20


def _load_key(public_key_hex: str) -> Ed25519PublicKey:
    try:
        raw = bytes.fromhex(public_key_hex.strip())
    except ValueError:
        raise ConfigError("DISCORD_PUBLIC_KEY must be the application's public key "
                          "as 64 hex characters") from None
    if len(raw) != _KEY_BYTES:
        raise ConfigError(f"DISCORD_PUBLIC_KEY must be {_KEY_BYTES} bytes "
                          f"(64 hex characters), got {len(raw)} bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ConfigError("DISCORD_PUBLIC_KEY is not a valid Ed25519 public key") from None


class SignatureVerifier:
    """Checks ``X-Signature-Ed25519`` and ``X-Signature-Timestamp`` of an interaction request.

    ``public_key_hex`` is the "Public Key" on the application's page in the developer portal.
    ``max_age_s`` bounds how far the signed timestamp may be from ``clock()`` (in either
    direction); ``None`` turns the freshness check off and only the signature counts.
    """

    def __init__(self, public_key_hex: str, *, max_age_s: float | None = 300,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = _load_key(public_key_hex)
        self._max_age_s = max_age_s
        self._clock = clock

    def check(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """:meth:`is_valid` on a delivery's own headers (functions/platform.py's shape)."""
        return self.is_valid(body, headers.get("x-signature-timestamp"),
                             headers.get("x-signature-ed25519"))

    def is_valid(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """True only for an untampered, fresh request signed with the application's key.

        Malformed or missing headers give False, never an exception, so the caller can answer
        a plain 401 to anything that is not exactly right.
        """
        if not timestamp or not signature:
            return False
        if not self._fresh(timestamp):
            return False
        # Exactly 128 characters: bytes.fromhex() would otherwise skip spaces inside.
        if len(signature) != 2 * _SIGNATURE_BYTES:
            return False
        try:
            raw_signature = bytes.fromhex(signature)
            signed = timestamp.encode("utf-8") + body
        except (ValueError, UnicodeEncodeError):
            return False
        try:
            self._key.verify(raw_signature, signed)
        except InvalidSignature:
            return False
        return True

    def _fresh(self, timestamp: str) -> bool:
        if self._max_age_s is None:
            return True
        # isdigit() alone accepts other scripts' digits and superscripts; int() accepts signs,
        # spaces and underscores: only plain ASCII digits are a timestamp Discord would send.
        if not (timestamp.isascii() and timestamp.isdigit()
                and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
            return False
        return abs(self._clock() - int(timestamp)) <= self._max_age_s
