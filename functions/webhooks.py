"""What the platform webhooks share: settings, the queue, conversations, a few lazy clients,
and the check of each delivery (the platform's own, functions/platform.py).

Webhook handlers are stateless: everything they need is built once per process (once per
Lambda container) on first use, so an import or a cold start never waits on the network. The
database too is opened on first need: a webhook function on SQS queues most deliveries without
it (its cold start stays under 300 ms, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.messaging import ANSWER_JOB, Inbound
from functions.platform import Platform, Verifier
from shared.errors import BadRequest, ConfigError
from shared.http import json_error, read_body
from shared.openai_schema import parse_json_object
from shared.queue.contract import JobQueue
from shared.settings import Settings

if TYPE_CHECKING:
    import httpx

    from shared.conversations import Conversations
    from shared.db import Database

log = logging.getLogger(__name__)



@dataclass
class Webhooks:
    """Built once per process by :func:`build`; a bad platform key fails there, at start."""

    settings: Settings
    queue: JobQueue | None
    database: Callable[[], Database] | None = None  # the database, opened on first need
    # The platforms this process serves a webhook for, and the check of each one switched on.
    platforms: dict[str, Platform] = field(default_factory=dict)
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    _warned: set[str] = field(default_factory=set)
    cache: dict[str, Any] = field(default_factory=dict)

    async def delivery(self, request: Request, platform: str) -> bytes | Response:
        """The raw body of a delivery to ``platform``'s webhook once its check passed; else
        what refuses it: 404 while the platform is off, 401 for a bad signature."""
        verifier = self.verifiers.get(platform)
        if verifier is None:
            return self.off(platform)
        raw = await raw_body(request, self)
        if not verifier.check(raw, request.headers):
            return unauthorized(platform)
        return raw

    def conversations(self) -> Conversations:
        """The conversations store (the database is opened here, the first time)."""
        if "conversations" not in self.cache:
            from shared.conversations import Conversations

            self.cache["conversations"] = Conversations(self.db())
        conversations: Conversations = self.cache["conversations"]
        return conversations

    def db(self) -> Database:
        if self.database is None:
            raise ConfigError("DATABASE_URL is not set: the webhooks need the database")
        return self.database()

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            from functions.platforms import http_client

            self.http = http_client(self.settings)
        return self.http

    async def accept(self, inbound: Inbound, kind: str = ANSWER_JOB) -> bool:
        """Queue the answer to ``inbound`` unless its delivery was accepted before."""
        assert self.queue is not None
        accepted = await self.queue.enqueue(kind, inbound.to_json(),
                                            dedup=(inbound.platform, inbound.delivery_id))
        if not accepted:
            log.info("%s delivery %s came again; already accepted", inbound.platform,
                     inbound.delivery_id)
        return accepted

    async def forget_person(self, platform: str, user: str) -> dict[str, int]:
        """Everything stored about this person goes (their own ``/forget``)."""
        # Loaded here: the webhooks' cold path needs none of it until someone asks.
        from shared.privacy import Person, forget_everything

        return await forget_everything(self.db(), self.settings.rate_limit_storage,
                                       Person(platform, user))

    def off(self, platform: str) -> Response:
        """404 for a platform whose secrets are not set, with one clear log line."""
        if platform not in self._warned:
            self._warned.add(platform)
            described = self.platforms.get(platform)
            needs = described.needs if described is not None else "its settings"
            log.warning("%s webhook called, but %s is off: set %s", platform, platform, needs)
        return json_error(404, f"{platform} is not configured on this server",
                          "invalid_request_error", "platform_disabled")

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()


def build(settings: Settings, database: Callable[[], Database] | None,
          queue: JobQueue | None, platforms: Sequence[Platform]) -> Webhooks:
    """The webhooks' shared parts, with the check of each enabled platform of ``platforms``
    ready; ``database`` opens the database, when first needed."""
    hooks = Webhooks(settings=settings, queue=queue, database=database,
                     platforms={p.name: p for p in platforms})
    for platform in platforms:
        if platform.enabled(settings):
            hooks.verifiers[platform.name] = platform.verifier(settings)
    return hooks


def webhooks(request: Request) -> Webhooks:
    hooks: Webhooks = request.app.state.webhooks
    return hooks


async def raw_body(request: Request, hooks: Webhooks) -> bytes:
    return await read_body(request, hooks.settings.max_body_bytes,
                           timeout_s=hooks.settings.body_timeout_s)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a verified delivery; :class:`BadRequest` (400) if it is not one.

    A lone surrogate in its text (valid JSON, not Unicode: shared/text.py) becomes U+FFFD and
    the rest is answered: a refusal would bring the same delivery back again and again (Slack
    retries three times, Telegram until it gets a 200), and the person would get no answer.
    """
    return parse_json_object(raw, repair_text=True)


def unauthorized(platform: str) -> Response:
    log.warning("%s webhook: bad or missing signature; refused", platform)
    return json_error(401, "invalid request signature", "invalid_request_error",
                      "invalid_signature")


_OK = b'{"ok":true}'


def ok(body: dict[str, Any] | None = None) -> Response:
    if body is None:
        return Response(_OK, media_type="application/json")
    return JSONResponse(body)


__all__ = ["BadRequest", "Webhooks", "ok", "parse_body", "raw_body", "unauthorized",
           "webhooks"]
