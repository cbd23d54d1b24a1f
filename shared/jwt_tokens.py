"""JWT helpers: one verifier with an allow-list of algorithms, one signer, key generation.

The verifier accepts exactly one kind of key, so the algorithm list follows from it: a shared
secret allows only HMAC, a public key only its own asymmetric family. That closes the classic
attacks (``alg: none``; an HS256 token "signed" with the public key as HMAC secret) without
trusting the token's header. ``exp``, ``aud`` and ``iss`` are required and checked, against an
injectable clock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.errors import ConfigError, InvalidToken

Clock = Callable[[], float]

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = ("ES256", "ES384", "ES512")
_ED_ALGORITHMS = ("EdDSA",)
ASYMMETRIC_ALGORITHMS = _RSA_ALGORITHMS + _EC_ALGORITHMS + _ED_ALGORITHMS
_VERIFIED_CACHE_SIZE = 4096
MIN_SECRET_BYTES = 32  # RFC 7518, 3.2: an HMAC key at least as long as its hash (HS256)


@dataclass(frozen=True)
class Claims:
    """What a verified token says about its holder."""

    sub: str
    scopes: frozenset[str] = frozenset()
    expires_at: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _public_key_algorithms(pem: str) -> tuple[str, ...]:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise ConfigError("the JWT public key is not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHMS
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _ED_ALGORITHMS
    raise ConfigError(f"unsupported public key type {type(key).__name__}")


def private_key_algorithm(pem: str) -> str:
    """The signing algorithm that a PEM private key implies."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError:
        raise ConfigError("the signing key is not an unencrypted PEM private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    raise ConfigError(f"unsupported private key type {type(key).__name__}")


def generate_ed25519_pair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    private = ed25519.Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


def _scopes(payload: Mapping[str, Any]) -> frozenset[str]:
    raw = payload.get("scope", payload.get("scp", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(str(s) for s in raw)
    return frozenset()


class TokenVerifier:
    """Verifies bearer JWTs against one secret, one public key, or one JWKS URL."""

    def __init__(
        self,
        *,
        audience: str,
        issuer: str,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        leeway_s: float = 30.0,
        clock: Clock = time.time,
    ) -> None:
        given = [k for k in (secret, public_key, jwks_url) if k]
        if len(given) != 1:
            raise ConfigError("configure exactly one of: a JWT secret, a public key, a JWKS URL")
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_s
        self._clock = clock
        # Verified tokens, by their exact text: callers reuse a token for minutes, and an
        # Ed25519 check costs 0.1 ms alone, 0.26 ms on a loaded gateway (docs/benchmarks.md).
        self._verified: dict[str, Claims] = {}
        self._jwks: jwt.PyJWKClient | None = None
        self._key: Any
        self.algorithms: tuple[str, ...]
        if secret:
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")
            self._key, self.algorithms = secret, HMAC_ALGORITHMS
        elif public_key:
            self.algorithms = _public_key_algorithms(public_key)
            self._key = serialization.load_pem_public_key(public_key.encode())
        else:
            assert jwks_url is not None
            self._key, self.algorithms = None, ASYMMETRIC_ALGORITHMS
            self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    @property
    def does_io(self) -> bool:
        """True when verifying may fetch keys over the network (JWKS): call it off the loop."""
        return self._jwks is not None

    def verify(self, token: str) -> Claims:
        """Return the token's claims, or raise :class:`InvalidToken` saying why."""
        known = self._verified.get(token)
        if known is not None:
            if self._clock() > known.expires_at + self._leeway:
                del self._verified[token]
                raise InvalidToken("token expired")
            return known
        claims = self._verify(token)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> Claims:
        if not token or token.count(".") != 2:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.algorithms:
                raise InvalidToken("token algorithm not allowed")
            key = self._key
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["exp", "sub", "aud", "iss"],
                    # Time claims are checked below against the injectable clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except InvalidToken:
            raise
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature does not verify") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidToken("malformed token") from None
        now = self._clock()
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or now > exp + self._leeway:
            raise InvalidToken("token expired")
        nbf = payload.get("nbf")
        if isinstance(nbf, int | float) and now + self._leeway < nbf:
            raise InvalidToken("token not valid yet")
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 256:
            raise InvalidToken("token subject is missing or malformed")
        return Claims(sub=sub, scopes=_scopes(payload), expires_at=float(exp), raw=payload)


class TokenSigner:
    """Signs tokens with one key; for a private key, the algorithm follows from its type."""

    def __init__(
        self,
        *,
        audience: str,
        issuer: str,
        secret: str | None = None,
        private_key: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        if bool(secret) == bool(private_key):
            raise ConfigError("a signer needs exactly one of: a secret, a private key")
        self._audience = audience
        self._issuer = issuer
        self._clock = clock
        self._key: Any
        if secret:
            self._key, self.algorithm = secret, "HS256"
        else:
            assert private_key is not None
            self.algorithm = private_key_algorithm(private_key)
            self._key = serialization.load_pem_private_key(private_key.encode(), password=None)

    def sign(self, sub: str, *, ttl_s: float, scopes: tuple[str, ...] = ()) -> str:
        """A token for ``sub`` that expires ``ttl_s`` seconds from now."""
        now = int(self._clock())
        payload: dict[str, Any] = {
            "sub": sub,
            "aud": self._audience,
            "iss": self._issuer,
            "iat": now,
            "exp": now + int(ttl_s),
            "jti": uuid.uuid4().hex,
        }
        if scopes:
            payload["scope"] = " ".join(scopes)
        return jwt.encode(payload, self._key, algorithm=self.algorithm)


class CachedSigner:
    """Reuses a subject's token until a fifth of its life is left: signing costs CPU per call."""

    def __init__(self, signer: TokenSigner, ttl_s: float, clock: Clock = time.time) -> None:
        self._signer = signer
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def token_for(self, sub: str) -> str:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(sub)
            if hit and hit[0] - now > self._ttl / 5:
                return hit[1]
            token = self._signer.sign(sub, ttl_s=self._ttl)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[sub] = (now + self._ttl, token)
            return token
