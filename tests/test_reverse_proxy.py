"""The reverse proxy example (docs/deploy/Caddyfile) publishes the webhooks and nothing private.

Its matchers are read as Caddy reads them (a ``path`` list, ``*`` at the end a prefix) and
tried on every route of the app: the three webhooks are published; the web chat, the admin
view, ``/v1/admin/`` and ``/metrics`` are not, even with the API's block uncommented; the
API's block, uncommented, publishes every other ``/v1/`` route.
"""

from __future__ import annotations

import re
from pathlib import Path

from functions.web.routes import ROUTES as WEB_ROUTES

CADDYFILE = Path(__file__).resolve().parents[1] / "docs" / "deploy" / "Caddyfile"
WEBHOOKS = ("/slack/events", "/telegram/webhook", "/discord/interactions")
API = ("/v1/chat/completions", "/v1/models", "/v1/moderations", "/v1/embeddings", "/v1/documents",
       "/v1/documents/7", "/v1/collections", "/v1/passages/12")
PRIVATE = ("/", "/admin", "/metrics", "/healthz", *(
    re.sub(r"\{[^}]+\}", "x", r.path) for r in WEB_ROUTES))  # type: ignore[attr-defined]


def _matches(pattern: str, path: str) -> bool:
    return path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern


def published(text: str) -> list[tuple[list[str], list[str]]]:
    """Each handled matcher: the paths it takes and those it leaves out."""
    blocks = []
    for name in re.findall(r"^\s*handle @(\w+)", text, re.M):
        one_line = re.search(rf"^\s*@{name} path (.+)$", text, re.M)
        if one_line:
            blocks.append((one_line.group(1).split(), []))
            continue
        body = re.search(rf"^\s*@{name} \{{(.*?)^\s*\}}", text, re.M | re.S)
        assert body, f"matcher @{name} not found"
        paths = re.findall(r"^\s*path (.+)$", body.group(1), re.M)
        nots = re.findall(r"^\s*not path (.+)$", body.group(1), re.M)
        blocks.append(([p for line in paths for p in line.split()],
                       [p for line in nots for p in line.split()]))
    return blocks


def reachable(text: str, path: str) -> bool:
    return any(any(_matches(p, path) for p in takes) and not any(_matches(p, path)
                                                                for p in leaves)
               for takes, leaves in published(text))


def test_the_webhooks_are_published_and_nothing_private() -> None:
    text = CADDYFILE.read_text()
    assert all(reachable(text, path) for path in WEBHOOKS)
    assert not [p for p in (*PRIVATE, *API) if reachable(text, p)]
    assert re.search(r"^\s*handle \{\s*respond 404\s*\}", text, re.M)  # the rest: 404


def test_the_api_block_uncommented_publishes_the_api_but_not_its_admin() -> None:
    text = re.sub(r"^(\s*)# ?", r"\1", CADDYFILE.read_text(), flags=re.M)
    assert all(reachable(text, path) for path in (*WEBHOOKS, *API))
    assert not [p for p in PRIVATE if reachable(text, p)]
