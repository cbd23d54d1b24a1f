"""``GET /metrics`` of the functions app: Prometheus text, for tokens with the ``admin`` scope.

The counts come from the database, not from this process: the worker that withholds an
answer runs in another process (or another Lambda container), and a scrape must see all of
them. ``charla_moderation_events_total`` counts the rows of ``moderation_events``, so it only
grows (an operator deleting rows looks like a counter reset, which Prometheus handles).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shared.http import json_error
from shared.moderation import STAGES
from shared.moderation_log import event_counts

SCOPE = "admin"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SOURCES = ("policy", "classifier")


def render(counts: dict[tuple[str, str], int]) -> str:
    """The exposition text; every (stage, source) pair appears, at 0 until it happens."""
    name = "charla_moderation_events_total"
    lines = [f"# HELP {name} Messages (input) and answers (output) withheld by moderation.",
             f"# TYPE {name} counter"]
    for stage in STAGES:
        for source in SOURCES:
            lines.append(f'{name}{{stage="{stage}",action="blocked",source="{source}"}} '
                         f"{counts.get((stage, source), 0)}")
    return "\n".join(lines) + "\n"


async def metrics(request: Request) -> Response:
    if SCOPE not in request.auth.scopes:
        return json_error(403, f"this token lacks the {SCOPE!r} scope "
                          f"(charla token --sub NAME --scope {SCOPE})", "permission_error",
                          "insufficient_scope")
    db = request.app.state.api.db
    counts = await event_counts(db) if db is not None else {}
    return Response(render(counts), media_type=CONTENT_TYPE)
