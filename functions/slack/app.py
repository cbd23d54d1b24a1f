"""``POST /slack/events``: verify → parse → de-duplicate and queue → answer Slack at once.

Slack wants a 2xx within 3 seconds or it retries (``X-Slack-Retry-Num``); the answer itself is
the worker's job. A retried event finds its ``event_id`` already accepted and does nothing.
https://api.slack.com/apis/events-api#responding
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from functions.messaging import FORGET_JOB
from functions.slack.payload import Ignored, UrlVerification, classify, forget_request
from functions.webhooks import Webhooks, ok, parse_body, webhooks

log = logging.getLogger(__name__)


async def _asked_in(hooks: Webhooks, thread: str) -> bool:
    """Whether the bot was asked in this thread: marked from the moment a question there is
    accepted, not once it is answered (functions/slack/threads.py)."""
    # Loaded here: only a thread reply needs the database on the webhook's way.
    from functions.slack import threads

    return await threads.known(hooks.db(), thread)


async def slack_events(request: Request) -> Response:
    hooks = webhooks(request)
    raw = await hooks.delivery(request, "slack")
    if isinstance(raw, Response):
        return raw  # off, or not from Slack
    event = classify(parse_body(raw))
    if isinstance(event, UrlVerification):
        return ok({"challenge": event.challenge})
    if isinstance(event, Ignored):
        log.debug("slack event ignored: %s", event.reason)
        return ok()
    inbound = event.inbound
    if event.direct and forget_request(inbound.text):
        await hooks.accept(inbound, FORGET_JOB)  # the worker forgets, then says so
        return ok()
    if event.needs_existing_conversation and not await _asked_in(hooks, inbound.conversation):
        return ok()  # a thread Charla is not part of
    await hooks.accept(inbound)  # a retried event (X-Slack-Retry-Num) finds its id taken
    return ok()
