"""The one client the functions use to reach the model server, with short-lived service tokens.

Each call carries a token whose ``sub`` names the end user the functions act for (``api:alice``,
later ``slack:T1:U2``), so the gateway's limits apply per person. Failures come out as three
errors with the status the caller should answer: unreachable (503), too slow (504), refused
(the gateway's own status and message, e.g. 429 with its ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from shared.settings import Settings
from shared.tokens import CachedSigner, TokenSigner

if TYPE_CHECKING:
    import numpy as np


class ModelServerError(Exception):
    """The model server did not give an answer; ``status`` is what to answer the caller."""

    def __init__(self, status: int, message: str, retry_after: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.code = code


def unavailable() -> ModelServerError:
    return ModelServerError(503, "the model server is unavailable; try again shortly", "5",
                            "model_server_unavailable")


def too_slow() -> ModelServerError:
    return ModelServerError(504, "the model server did not answer in time", None,
                            "model_server_timeout")


async def _refusal(response: httpx.Response) -> ModelServerError:
    raw = await response.aread()
    message, code = f"the model server answered {response.status_code}", None
    try:
        err = json.loads(raw).get("error", {})
        message = str(err.get("message") or message)[:500]
        code = err.get("code")
    except (ValueError, AttributeError):
        pass
    status = response.status_code
    if status >= 500 and status not in (503, 504):
        status = 502
    return ModelServerError(status, message, response.headers.get("retry-after"), code)


class ModelClient:
    """Chat completions and embeddings from the model server, as a given end user."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None):
        if settings.service_private_key is None:
            raise ValueError("CHARLA_SERVICE_PRIVATE_KEY is not set")
        signer = TokenSigner(
            private_key=settings.service_private_key.reveal(),
            audience=settings.service_audience,
            issuer=settings.service_issuer,
        )
        self._tokens = CachedSigner(signer, settings.service_token_ttl_s)
        self._total_timeout = settings.model_timeout_s
        # No automatic retries: a retried POST could generate (and be billed) twice.
        self._http = httpx.AsyncClient(
            base_url=settings.model_server_url,
            timeout=httpx.Timeout(
                settings.model_first_token_timeout_s, connect=settings.model_connect_timeout_s
            ),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _headers(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.token_for(sub)}"}

    async def complete(self, body: dict[str, Any], *, sub: str) -> dict[str, Any]:
        """A whole ``chat.completion`` for ``body`` (which must not ask to stream)."""
        try:
            response = await asyncio.wait_for(
                self._http.post("/v1/chat/completions", json=body, headers=self._headers(sub)),
                self._total_timeout,
            )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise too_slow() from exc
        except httpx.TransportError as exc:
            raise unavailable() from exc
        if response.status_code != 200:
            raise await _refusal(response)
        result: dict[str, Any] = response.json()
        return result

    async def embed(self, texts: list[str], *, sub: str, query: bool
                    ) -> tuple[str, list[np.ndarray]]:
        """The embedding model's name, and one unit-length vector per text (``query``: a
        search query, else a passage)."""
        import numpy as np  # here, not at import: webhooks never embed, and start faster

        body = {"input": texts, "input_type": "query" if query else "passage",
                "encoding_format": "base64"}
        try:
            response = await asyncio.wait_for(
                self._http.post("/v1/embeddings", json=body, headers=self._headers(sub)),
                self._total_timeout,
            )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise too_slow() from exc
        except httpx.TransportError as exc:
            raise unavailable() from exc
        if response.status_code != 200:
            raise await _refusal(response)
        answer = response.json()
        data = sorted(answer["data"], key=lambda item: item["index"])
        return str(answer["model"]), [np.frombuffer(base64.b64decode(item["embedding"]),
                                                    dtype="<f4") for item in data]

    async def stream(self, body: dict[str, Any], *, sub: str) -> AsyncIterator[bytes]:
        """The gateway's server-sent events, passed through as they arrive.

        Errors before the first event raise :class:`ModelServerError`; the caller should pull
        the first chunk before it commits to a 200.
        """
        request = self._http.build_request(
            "POST", "/v1/chat/completions", json=body, headers=self._headers(sub)
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise too_slow() from exc
        except httpx.TransportError as exc:
            raise unavailable() from exc
        try:
            if response.status_code != 200:
                raise await _refusal(response)
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise too_slow() from exc
        except httpx.TransportError as exc:
            raise unavailable() from exc
        finally:
            await response.aclose()

    async def healthy(self) -> bool:
        """Whether the model server says it can answer (its public health route)."""
        try:
            response = await self._http.get("/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def get(self, path: str, *, sub: str) -> dict[str, Any]:
        try:
            response = await self._http.get(path, headers=self._headers(sub))
        except httpx.TimeoutException as exc:
            raise too_slow() from exc
        except httpx.TransportError as exc:
            raise unavailable() from exc
        if response.status_code != 200:
            raise await _refusal(response)
        result: dict[str, Any] = response.json()
        return result
