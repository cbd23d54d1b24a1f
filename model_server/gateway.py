"""What the gateway's routes share: settings, the engines, metrics and the per-user limits.

One :class:`Gateway` per app, on ``app.state.gateway`` (:func:`model_server.app.create_app`
makes it); every route reaches it with :func:`gateway_of`. It refuses a user who is over the
request limit or out of token budget, and writes the charges the routes collect to the limit
storage in the background (:meth:`Gateway.flush_forever`), so no request waits on that write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from model_server.engines.base import ChatEngine, Embedder
from model_server.metrics import Metrics
from shared.http import json_error, read_body
from shared.openai_schema import parse_json_object
from shared.ratelimit import Quota
from shared.settings import Settings

FLUSH_S = 0.5


@dataclass
class Gateway:
    """What the routes share; lives on ``app.state.gateway``."""

    settings: Settings
    engine: ChatEngine
    embedder: Embedder
    metrics: Metrics
    requests: Quota
    budget: Quota
    started: float = 0.0
    # The most the engine has counted in a prompt beyond the estimator's count, so far in this
    # process: held from the budget with every chat request (model_server/charges.py).
    prompt_surplus: int = 0

    def refusal(self, sub: str) -> Response | None:
        """429 when ``sub`` is over the request limit or out of tokens, else None."""
        return self.request_refusal(sub) or self.budget_refusal(self.budget.retry_after(sub))

    def request_refusal(self, sub: str) -> Response | None:
        """429 when ``sub`` is over the request limit (this request is counted), else None."""
        retry = self.requests.take(sub)
        if retry is None:
            return None
        self.metrics.limited_requests.inc()
        return _too_many(f"rate limit exceeded ({self.settings.model_rate_limit})",
                         "rate_limit_exceeded", retry)

    def budget_refusal(self, retry: int | None) -> Response | None:
        """429 for a token budget that says retry in ``retry`` seconds; None for None."""
        if retry is None:
            return None
        self.metrics.limited_tokens.inc()
        return _too_many(f"token budget used up ({self.settings.token_budget})",
                         "token_budget_exceeded", retry)

    async def flush_forever(self) -> None:
        """Write collected request and token charges to the limit storage, off the request path."""
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        # A thread hop costs the idle gateway about a millisecond of CPU a second on 2
        # cores (development measurement): skipped when nothing waits to be written.
        if self.requests.pending or self.budget.pending:
            await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        self.requests.flush()
        self.budget.flush()


def _too_many(what: str, code: str, retry: int) -> Response:
    return json_error(429, f"{what}; retry in {retry} s", "rate_limit_exceeded", code,
                      headers={"Retry-After": str(retry)})


def gateway_of(request: Request) -> Gateway:
    """The gateway of the app that ``request`` came to."""
    gw: Gateway = request.app.state.gateway
    return gw


async def json_body(request: Request, gw: Gateway) -> dict[str, Any]:
    """The request's JSON object, read within the settings' size and time limits."""
    return parse_json_object(await read_body(request, gw.settings.max_body_bytes,
                                             timeout_s=gw.settings.body_timeout_s))
