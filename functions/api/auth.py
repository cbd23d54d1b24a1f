"""How API clients prove who they are: a JWT checked against one configured key source."""

from __future__ import annotations

from shared.errors import ConfigError
from shared.jwt_tokens import MIN_SECRET_BYTES, TokenSigner, TokenVerifier
from shared.settings import Settings


def client_verifier(settings: Settings) -> TokenVerifier:
    """A verifier for client tokens: shared secret, public key, or JWKS URL (one of them)."""
    sources = [settings.api_jwt_secret, settings.api_jwt_public_key, settings.api_jwks_url]
    if sum(1 for s in sources if s) != 1:
        raise ConfigError(
            "set exactly one of CHARLA_API_JWT_SECRET, CHARLA_API_JWT_PUBLIC_KEY, "
            "CHARLA_API_JWKS_URL (charla up creates a development secret under .charla/)"
        )
    return TokenVerifier(
        secret=settings.api_jwt_secret.reveal() if settings.api_jwt_secret else None,
        public_key=settings.api_jwt_public_key.reveal() if settings.api_jwt_public_key else None,
        jwks_url=settings.api_jwks_url,
        audience=settings.api_jwt_audience,
        issuer=settings.api_jwt_issuer,
    )


def client_signer(settings: Settings) -> TokenSigner:
    """Signs client tokens; only possible with the shared secret (``charla token``)."""
    if settings.api_jwt_secret is None:
        raise ConfigError(
            "charla token signs with CHARLA_API_JWT_SECRET; with a public key or a JWKS URL, "
            "tokens come from your identity provider"
        )
    secret = settings.api_jwt_secret.reveal()
    if len(secret.encode()) < MIN_SECRET_BYTES:  # the API would refuse to start with it
        raise ConfigError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")
    return TokenSigner(secret=secret, audience=settings.api_jwt_audience,
                       issuer=settings.api_jwt_issuer)
