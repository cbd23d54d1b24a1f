"""The JWT attacks a verifier must refuse, and the claims it must require."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest

from shared.errors import ConfigError, InvalidToken
from shared.jwt_tokens import CachedSigner, TokenSigner, TokenVerifier, generate_ed25519_pair

AUD, ISS = "charla-api", "charla"
SECRET = "k" * 48
NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, object], payload: dict[str, object], key: bytes | None) -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    if key is None:
        return head + "."
    sig = hmac.new(key, head.encode(), hashlib.sha256).digest()
    return head + "." + b64(sig)


def claims(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"sub": "alice", "aud": AUD, "iss": ISS, "exp": NOW + 60,
                               "iat": NOW}
    base.update(over)
    return base


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_ed25519_pair()


def test_round_trip_with_secret() -> None:
    signer = TokenSigner(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    verifier = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    token = signer.sign("alice", ttl_s=60, scopes=("admin",))
    got = verifier.verify(token)
    assert got.sub == "alice"
    assert got.scopes == frozenset({"admin"})


def test_round_trip_with_key_pair(keys: tuple[str, str]) -> None:
    signer = TokenSigner(private_key=keys[0], audience=AUD, issuer=ISS, clock=clock)
    assert signer.algorithm == "EdDSA"
    verifier = TokenVerifier(public_key=keys[1], audience=AUD, issuer=ISS, clock=clock)
    assert verifier.verify(signer.sign("bob", ttl_s=60)).sub == "bob"


def test_alg_none_is_refused() -> None:
    verifier = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(forge({"alg": "none", "typ": "JWT"}, claims(), None))


def test_hs256_signed_with_the_public_key_is_refused(keys: tuple[str, str]) -> None:
    verifier = TokenVerifier(public_key=keys[1], audience=AUD, issuer=ISS, clock=clock)
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(), keys[1].encode())
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_tampered_payload_is_refused() -> None:
    signer = TokenSigner(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    verifier = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    head, _, sig = signer.sign("alice", ttl_s=60).split(".")
    evil = b64(json.dumps(claims(sub="root")).encode())
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(f"{head}.{evil}.{sig}")


def test_expired_token_is_refused_by_the_injected_clock() -> None:
    signer = TokenSigner(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    token = signer.sign("alice", ttl_s=60)
    later = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, leeway_s=0,
                          clock=lambda: NOW + 61)
    with pytest.raises(InvalidToken, match="expired"):
        later.verify(token)
    within = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, leeway_s=0,
                           clock=lambda: NOW + 59)
    assert within.verify(token).sub == "alice"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (claims(aud="someone-else"), "audience"),
        (claims(iss="evil"), "issuer"),
        ({k: v for k, v in claims().items() if k != "exp"}, "'exp'"),
        ({k: v for k, v in claims().items() if k != "sub"}, "'sub'"),
        (claims(nbf=NOW + 3600), "not valid yet"),
    ],
)
def test_claims_are_checked(payload: dict[str, object], reason: str) -> None:
    verifier = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify(token)


@pytest.mark.parametrize("junk", ["", "abc", "a.b", "a.b.c", "eyJhbGciOi.x.y", "🙂.🙂.🙂"])
def test_garbage_is_an_invalid_token_not_a_crash(junk: str) -> None:
    verifier = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, clock=clock)
    with pytest.raises(InvalidToken):
        verifier.verify(junk)


def test_configuration_mistakes_are_caught_early(keys: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        TokenVerifier(secret=SECRET, public_key=keys[1], audience=AUD, issuer=ISS)
    with pytest.raises(ConfigError, match="32 bytes"):
        TokenVerifier(secret="short", audience=AUD, issuer=ISS)
    with pytest.raises(ConfigError, match="PEM"):
        TokenVerifier(public_key="not a key", audience=AUD, issuer=ISS)


def test_cached_signer_reuses_then_renews() -> None:
    now = [NOW]
    signer = TokenSigner(secret=SECRET, audience=AUD, issuer=ISS, clock=lambda: now[0])
    cached = CachedSigner(signer, ttl_s=100, clock=lambda: now[0])
    first = cached.token_for("alice")
    assert cached.token_for("alice") == first
    assert cached.token_for("bob") != first
    now[0] += 81  # less than a fifth of the life left
    assert cached.token_for("alice") != first


def test_a_cached_verification_still_expires() -> None:
    now = [NOW]
    signer = TokenSigner(secret=SECRET, audience=AUD, issuer=ISS, clock=lambda: now[0])
    verifier = TokenVerifier(secret=SECRET, audience=AUD, issuer=ISS, leeway_s=0,
                             clock=lambda: now[0])
    token = signer.sign("alice", ttl_s=60)
    assert verifier.verify(token).sub == "alice"
    assert verifier.verify(token).sub == "alice"  # from the cache
    now[0] += 61
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)
