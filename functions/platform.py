"""What a chat platform is to the rest of the functions: one :class:`Platform` description.

Each platform's folder (``functions/slack/``, ``functions/telegram/``, ``functions/discord/``)
exports one, as ``PLATFORM`` in its ``platform.py``: its name, its webhook's route and
endpoint, the settings that switch it on, how to build the check of its deliveries and the
channel its answers go out by. The composition layer (functions/platforms.py) lists them; the
webhooks' toolkit (functions/webhooks.py), the functions app, the Lambda entries and the worker
read that list and name no platform themselves. A fourth platform is a new folder and one line
in that list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import httpx
    from starlette.requests import Request
    from starlette.responses import Response

    from functions.messaging import Inbound, ReplyChannel
    from shared.queue.dedup import OnAccept
    from shared.retention import Rule
    from shared.settings import Settings


class Verifier(Protocol):
    """The check every delivery to a webhook passes before its body is read as JSON."""

    def check(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Whether the delivery (its raw ``body`` and its HTTP ``headers``) comes from the
        platform; never raises on bad input (the caller answers 401)."""


@dataclass(frozen=True)
class Platform:
    """One chat platform, as the functions see it."""

    name: str  # "slack": the ``platform`` of its inbound messages and of its jobs
    route: str  # its webhook's path, POST only
    endpoint: Callable[[Request], Awaitable[Response]]  # the webhook's handler
    settings: tuple[str, ...]  # the Settings fields it needs; all set: the platform is on
    optional: tuple[str, ...]  # other Settings fields of its own, read when set
    needs: str  # the same, as a person sets them: "SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"
    verifier: Callable[[Settings], Verifier]  # built once, at start (a bad key fails there)
    channel: Callable[[Settings, httpx.AsyncClient, Inbound], ReplyChannel]  # answers go here
    # What it records with each delivery accepted, in the statement that accepts it (Slack:
    # the thread asked in), and the retention rules of those records.
    on_accept: tuple[OnAccept, ...] = ()
    kept: tuple[Rule, ...] = ()

    def enabled(self, settings: Settings) -> bool:
        """Whether its settings are all set."""
        return all(getattr(settings, name) for name in self.settings)

    @property
    def own_settings(self) -> tuple[str, ...]:
        """Every Settings field that belongs to this platform alone."""
        return self.settings + self.optional
