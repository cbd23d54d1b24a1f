"""The chat platforms: the one list of them, and the reply channels of those switched on.

Each platform describes itself (``functions/<platform>/platform.py``, functions/platform.py);
this is the only place that lists them. A platform is on when its settings are set
(shared/settings.py); the rest stay off, their webhook routes answer 404, and the worker
refuses their jobs. Descriptions load on demand: a webhook function on Lambda loads its own
platform alone (:func:`load`), the functions app and the worker load them all
(:func:`everyone`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import import_module
from typing import TYPE_CHECKING

from functions.platform import Platform

if TYPE_CHECKING:
    import httpx

    from functions.messaging import Inbound, ReplyChannel
    from shared.queue.dedup import OnAccept
    from shared.retention import Rule
    from shared.settings import Settings

log = logging.getLogger(__name__)

# name -> the module whose ``PLATFORM`` describes it.
MODULES = {
    "slack": "functions.slack.platform",
    "telegram": "functions.telegram.platform",
    "discord": "functions.discord.platform",
}
NAMES = tuple(MODULES)


def load(name: str) -> Platform:
    """The description of platform ``name`` (importing its folder, and no other's)."""
    platform: Platform = import_module(MODULES[name]).PLATFORM
    return platform


def everyone() -> tuple[Platform, ...]:
    return tuple(load(name) for name in NAMES)


def on_accept(platforms: Sequence[Platform]) -> tuple[OnAccept, ...]:
    """What the queue records with each delivery accepted, for ``platforms``."""
    return tuple(hook for p in platforms for hook in p.on_accept)


def kept() -> tuple[Rule, ...]:
    """The retention rules of what the platforms record beside their deliveries."""
    return tuple(rule for p in everyone() for rule in p.kept)


def enabled(settings: Settings) -> dict[str, bool]:
    return {p.name: p.enabled(settings) for p in everyone()}


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client for platform APIs: bounded time, no automatic retries (a retried POST
    could post a message twice; functions/worker/reply.py retries safely instead). Loaded
    here: a webhook function's cold path needs no HTTP client."""
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.platform_timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
    )


class Platforms:
    """Outbound channels of the enabled platforms."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.on = {p.name: p for p in everyone() if p.enabled(settings)}

    def channel(self, inbound: Inbound) -> ReplyChannel:
        """Where the answer to ``inbound`` goes."""
        platform = self.on.get(inbound.platform)
        if platform is None:
            raise LookupError(f"platform {inbound.platform!r} is not configured")
        return platform.channel(self.settings, self.http, inbound)

    async def close(self) -> None:
        await self.http.aclose()
