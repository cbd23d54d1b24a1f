"""slack-bolt's AsyncApp with an empty listener, served like ours: the ingress baseline.

``python -m bench.bolt_app PORT`` with ``SLACK_SIGNING_SECRET`` set. Authorization is local
(no call to Slack, which this machine cannot reach); bolt verifies the signature, parses the
event, acknowledges it and runs the (empty) listener after answering.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def authorize(enterprise_id: str | None, team_id: str | None,
                    user_id: str | None) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                           bot_token="xoxb-bench",
                           bot_user_id="U07CHARLA", bot_id="B07CHARLA")


def create() -> Starlette:
    bolt = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], authorize=authorize,
                    ssl_check_enabled=False, url_verification_enabled=True)

    @bolt.event("app_mention")
    async def on_mention() -> None:
        return None

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def health(request: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]),
                             Route("/healthz", health)])


if __name__ == "__main__":
    uvicorn.run(create(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
