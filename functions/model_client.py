"""The one client the functions use to reach the model server, with short-lived service tokens.

Each call carries a token whose ``sub`` names the end user the functions act for (``api:alice``,
later ``slack:T1:U2``), so the gateway's limits apply per person. Failures come out as three
errors with the status the caller should answer: unreachable (503), too slow (504), refused
(the gateway's own status and message, e.g. 429 with its ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.errors import UpstreamError
from shared.jwt_tokens import CachedSigner, TokenSigner
from shared.keepalive_http import KeepAliveHTTP
from shared.settings import Settings

if TYPE_CHECKING:
    import numpy as np


class ModelServerError(UpstreamError):
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


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """Timeouts as :func:`too_slow`, connection failures (TLS included) as :func:`unavailable`."""
    try:
        yield
    except TimeoutError as exc:
        raise too_slow() from exc
    except OSError as exc:  # ConnectionError, ssl.SSLError, a refused connect
        raise unavailable() from exc


def _refusal(status: int, raw: bytes, retry_after: str | None) -> ModelServerError:
    message, code = f"the model server answered {status}", None
    try:
        err = json.loads(raw).get("error", {})
        message = str(err.get("message") or message)[:500]
        code = err.get("code")
    except (ValueError, AttributeError):
        pass
    if status >= 500 and status not in (503, 504):
        status = 502
    return ModelServerError(status, message, retry_after, code)


class ModelClient:
    """Chat completions and embeddings from the model server, as a given end user.

    Over :class:`~shared.keepalive_http.KeepAliveHTTP` (TLS for an ``https://`` URL, checked
    against the system's certificate authorities and ``SSL_CERT_FILE``): relaying a streamed
    answer, it costs the API about 40% less CPU per token than httpx did (docs/benchmarks.md).
    """

    def __init__(self, settings: Settings) -> None:
        if settings.service_private_key is None:
            raise ValueError("CHARLA_SERVICE_PRIVATE_KEY is not set")
        signer = TokenSigner(
            private_key=settings.service_private_key.reveal(),
            audience=settings.service_audience,
            issuer=settings.service_issuer,
        )
        self._tokens = CachedSigner(signer, settings.service_token_ttl_s)
        url = urlsplit(settings.model_server_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("MODEL_SERVER_URL must be an http:// or https:// URL")
        tls = ssl.create_default_context() if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        # No retries of a request that reached the server: a retried POST could generate
        # (and be billed) twice. (A kept-alive connection the server had closed before our
        # request reached it is the one exception: nothing was read, so it is sent again.)
        self._http = KeepAliveHTTP(url.hostname, url.port or (443 if tls else 80),
                                   connect_timeout_s=settings.model_connect_timeout_s,
                                   tls=tls, user_agent="charla-functions")
        self._wait_s = settings.model_first_token_timeout_s  # for the first token, and between
        self._total_timeout = settings.model_timeout_s  # for a whole answer

    async def close(self) -> None:
        await self._http.aclose()

    def _headers(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.token_for(sub)}"}

    async def _call(self, method: str, path: str, body: dict[str, Any] | None, *,
                    sub: str | None, within_s: float) -> dict[str, Any]:
        """One request and its whole JSON answer; refusals and failures as
        :class:`ModelServerError`."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = self._headers(sub) if sub is not None else None
        with _failures():
            async with asyncio.timeout(within_s):
                response = await self._http.request(method, self._prefix + path, payload,
                                                    headers=headers)
                try:
                    raw = await response.read()
                finally:
                    response.release()
        if response.status != 200:
            raise _refusal(response.status, raw, response.headers.get("retry-after"))
        try:
            result: dict[str, Any] = json.loads(raw)
        except ValueError:
            raise ModelServerError(502, "the model server sent an answer that is not JSON",
                                   None, "bad_gateway") from None
        return result

    async def complete(self, body: dict[str, Any], *, sub: str) -> dict[str, Any]:
        """A whole ``chat.completion`` for ``body`` (which must not ask to stream)."""
        return await self._call("POST", "/v1/chat/completions", body, sub=sub,
                                within_s=self._total_timeout)

    async def embed(self, texts: list[str], *, sub: str, query: bool
                    ) -> tuple[str, list[np.ndarray]]:
        """The embedding model's name, and one unit-length vector per text (``query``: a
        search query, else a passage)."""
        import numpy as np  # here, not at import: webhooks never embed, and start faster

        body = {"input": texts, "input_type": "query" if query else "passage",
                "encoding_format": "base64"}
        answer = await self._call("POST", "/v1/embeddings", body, sub=sub,
                                  within_s=self._total_timeout)
        data = sorted(answer["data"], key=lambda item: item["index"])
        return str(answer["model"]), [np.frombuffer(base64.b64decode(item["embedding"]),
                                                    dtype="<f4") for item in data]

    async def embeddings(self, body: dict[str, Any], *, sub: str) -> dict[str, Any]:
        """The gateway's ``/v1/embeddings`` answer to ``body``, as it is (OpenAI's shape)."""
        return await self._call("POST", "/v1/embeddings", body, sub=sub,
                                within_s=self._total_timeout)

    async def stream(self, body: dict[str, Any], *, sub: str) -> AsyncIterator[bytes]:
        """The gateway's server-sent events, passed through as they arrive.

        Errors before the first event raise :class:`ModelServerError`; the caller should pull
        the first chunk before it commits to a 200. Closing the generator early drops the
        connection, which makes the gateway stop the engine.
        """
        payload = json.dumps(body).encode()
        with _failures():
            async with asyncio.timeout(self._wait_s):
                response = await self._http.request("POST", self._prefix + "/v1/chat/completions",
                                                    payload, headers=self._headers(sub))
        try:
            with _failures():
                if response.status != 200:
                    async with asyncio.timeout(self._wait_s):
                        raw = await response.read()
                    raise _refusal(response.status, raw, response.headers.get("retry-after"))
                async for chunk in response.chunks(idle_timeout_s=self._wait_s):
                    yield chunk
        finally:
            response.release()

    async def healthy(self) -> bool:
        """Whether the model server says it can answer (its public health route)."""
        try:
            await self._call("GET", "/healthz", None, sub=None, within_s=2.0)
        except ModelServerError:
            return False
        return True

    async def get(self, path: str, *, sub: str) -> dict[str, Any]:
        return await self._call("GET", path, None, sub=sub, within_s=self._wait_s)
