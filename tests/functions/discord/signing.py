"""Plays Discord's side of request signing: an application key pair and Ed25519 signatures.

Only the signing lives here; what checks the signatures in the tests is the production
``functions.discord.verify.SignatureVerifier``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class ApplicationKeys:
    """A fresh key pair, as the developer portal makes for each application."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_hex = raw.hex()

    def sign(self, timestamp: str, body: bytes) -> str:
        """``X-Signature-Ed25519`` for a request with ``X-Signature-Timestamp: timestamp``."""
        return self.private_key.sign(timestamp.encode() + body).hex()

    def headers(self, timestamp: str, body: bytes) -> dict[str, str]:
        """The two headers Discord sends with every interaction request."""
        return {"X-Signature-Ed25519": self.sign(timestamp, body),
                "X-Signature-Timestamp": timestamp}
