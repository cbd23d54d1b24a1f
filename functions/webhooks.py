"""What the platform webhooks share: settings, the queue, conversations, a few lazy clients.

Webhook handlers are stateless: everything they need is built once per process (once per
Lambda container) on first use, so an import or a cold start never waits on the network. The
database too is opened on first need: a webhook function on SQS queues most deliveries without
it (its cold start stays under 300 ms, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.messaging import ANSWER_JOB, Inbound
from shared.errors import BadRequest, ConfigError
from shared.http import json_error, read_body
from shared.jobs import JobQueue
from shared.openai_schema import parse_json_object
from shared.settings import Settings

if TYPE_CHECKING:
    import httpx

    from shared.conversations import Conversations
    from shared.db import Database

log = logging.getLogger(__name__)



class Verifier(Protocol):
    def is_valid(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """Whether a delivery's signature holds (never raises on bad input)."""


@dataclass
class Webhooks:
    """Built once per process by :func:`build`; a bad platform key fails there, at start."""

    settings: Settings
    queue: JobQueue | None
    database: Callable[[], Database] | None = None  # the database, opened on first need
    slack_verifier: Verifier | None = None
    discord_verifier: Verifier | None = None
    telegram_bot_id: int | None = None
    http: httpx.AsyncClient | None = None
    _warned: set[str] = field(default_factory=set)
    cache: dict[str, Any] = field(default_factory=dict)

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

    def off(self, platform: str, needs: str) -> Response:
        """404 for a platform whose secrets are not set, with one clear log line."""
        if platform not in self._warned:
            self._warned.add(platform)
            log.warning("%s webhook called, but %s is off: set %s", platform, platform, needs)
        return json_error(404, f"{platform} is not configured on this server",
                          "invalid_request_error", "platform_disabled")

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()


def build(settings: Settings, database: Callable[[], Database] | None,
          queue: JobQueue | None) -> Webhooks:
    """The webhooks' shared parts, with each enabled platform's verifier ready; ``database``
    opens the database, when first needed."""
    hooks = Webhooks(settings=settings, queue=queue, database=database)
    if settings.slack_enabled:
        from functions.slack.verify import SignatureVerifier as SlackVerifier

        assert settings.slack_signing_secret is not None
        hooks.slack_verifier = SlackVerifier(settings.slack_signing_secret.reveal())
    if settings.discord_enabled:
        from functions.discord.verify import SignatureVerifier as DiscordVerifier

        assert settings.discord_public_key is not None
        hooks.discord_verifier = DiscordVerifier(settings.discord_public_key)
    if settings.telegram_enabled:
        from functions.telegram.payload import bot_id_from_token

        assert settings.telegram_bot_token is not None
        try:
            hooks.telegram_bot_id = bot_id_from_token(settings.telegram_bot_token.reveal())
        except ValueError:
            raise ConfigError("TELEGRAM_BOT_TOKEN is not a bot token (123456:ABC...)"
                              ) from None
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
