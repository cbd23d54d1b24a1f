"""Client tokens from an identity provider, checked against its JWKS URL.

The identity provider lies outside the team's network, so it is played by a local HTTP server
that publishes a real JWKS; the tokens are signed with the matching real private key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import Api, ServerThread, api_env, make_settings, start_api


class IdentityProvider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches = 0
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "key-1", "use": "sig", "alg": "RS256"})
        self.jwks = {"keys": [jwk]}

        async def keys(request: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse(self.jwks)

        self.server = ServerThread(Starlette(routes=[Route("/jwks.json", keys)])).start()
        self.url = self.server.url + "/jwks.json"

    def token(self, sub: str, *, kid: str = "key-1", key: rsa.RSAPrivateKey | None = None,
              aud: str = "charla-api", ttl: int = 300) -> str:
        now = int(time.time())
        claims = {"sub": sub, "aud": aud, "iss": "charla", "iat": now, "exp": now + ttl}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.server.stop()


@pytest.fixture(scope="module")
def jwks_api(idp: IdentityProvider, service_keys: tuple[str, str], api: Api,
             redis_url: str) -> Iterator[str]:
    assert api.settings.database_url is not None
    env = api_env(service_keys, api.settings.model_server_url,
                  api.settings.database_url.reveal(), redis_url, CHARLA_API_JWKS_URL=idp.url)
    del env["CHARLA_API_JWT_SECRET"]
    server = start_api(make_settings(**env))
    yield server.url
    server.stop()


def test_tokens_from_the_identity_provider_are_accepted(idp: IdentityProvider,
                                                        jwks_api: str) -> None:
    headers = {"Authorization": f"Bearer {idp.token('app@acme')}"}
    response = httpx.get(jwks_api + "/v1/models", headers=headers, timeout=30)
    assert response.status_code == 200
    fetched = idp.fetches
    assert fetched >= 1
    # Keys are cached: more requests do not hit the identity provider again.
    for _ in range(3):
        assert httpx.get(jwks_api + "/v1/models", headers=headers).status_code == 200
    assert idp.fetches == fetched


@pytest.mark.parametrize("case", ["foreign key", "unknown kid", "wrong audience", "expired",
                                  "hs256 with the public key"])
def test_bad_provider_tokens_are_401(idp: IdentityProvider, jwks_api: str, case: str) -> None:
    if case == "foreign key":
        token = idp.token("x", key=rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048))
    elif case == "unknown kid":
        token = idp.token("x", kid="key-9")
    elif case == "wrong audience":
        token = idp.token("x", aud="someone-else")
    elif case == "expired":
        token = idp.token("x", ttl=-600)
    else:
        # The attack: sign with HMAC, using the provider's public key as the secret.
        public = json.dumps(idp.jwks["keys"][0]).encode()
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
        body = _b64(json.dumps({"sub": "x", "aud": "charla-api", "iss": "charla",
                                "exp": int(time.time()) + 60}).encode())
        sig = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
        token = f"{head}.{body}.{_b64(sig)}"
    response = httpx.get(jwks_api + "/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"]
