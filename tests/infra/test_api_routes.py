"""Every route the functions app serves is reachable through API Gateway, and on the right function.

API Gateway's HTTP API answers 404 itself for a request no route matches; it never reaches a
function. A route matches on its method (or ``ANY``) and its path, where ``{name}`` takes one
segment and a final ``{name+}`` the rest
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html).
The app is built as the api function builds it (functions/lambda_app.py: ``create_app``), and
its routes are compared with modules/api's route keys in both directions.

Starlette answers HEAD on every GET route by itself; API Gateway's ``GET`` routes do not take
HEAD, and nothing Charla serves needs it, so HEAD is not asked for here.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from functions.api.auth import client_verifier
from functions.app import create_app
from functions.model_client import ModelClient
from functions.platforms import everyone
from shared.jwt_tokens import generate_ed25519_pair
from shared.settings import Settings
from tests.infra.hcl import TERRAFORM, items, parsed, ref

# Served by the app, deliberately not routed on AWS (modules/api/main.tf and the infra README
# say why): Prometheus's scrape would need an admin-scope token on the internet.
NOT_ON_AWS = {("GET", "/metrics")}
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}$")  # Starlette's {name[:conv]}
_GATEWAY_PARAM = re.compile(r"^\{[A-Za-z0-9_]+(\+)?\}$")  # API Gateway's {name} and {name+}

Route = tuple[str, str]  # (method, path template)


def _app_routes() -> set[Route]:
    private_key = generate_ed25519_pair()[0]
    settings = Settings.from_env({"CHARLA_API_JWT_SECRET": "s" * 40,
                                  "CHARLA_SERVICE_PRIVATE_KEY": private_key})
    model = ModelClient(settings)
    try:
        app = create_app(settings, verifier=client_verifier(settings), model=model, db=None,
                         housekeeping=False)
        found: set[Route] = set()
        for route in app.routes:
            path = getattr(route, "path", None)
            methods = getattr(route, "methods", None)
            assert path is not None and methods, f"{route!r}: not a plain route"
            found |= {(method, path) for method in methods if method != "HEAD"}
        return found
    finally:
        asyncio.run(model.close())


def _gateway_routes() -> dict[Route, str]:
    """(method, path) of each API Gateway route, and the function it invokes."""
    routes = parsed(TERRAFORM / "modules/api/main.tf")["locals"][0]["routes"]
    out: dict[Route, str] = {}
    for key, function in routes.items():
        method, path = str(key).split(" ", 1)
        out[(method, path)] = str(function)
    return out


def covers(gateway: Route, app: Route) -> bool:
    """Whether API Gateway's route ``gateway`` takes every request that ``app`` serves."""
    (g_method, g_path), (a_method, a_path) = gateway, app
    if g_method not in ("ANY", a_method):
        return False
    g_parts, a_parts = g_path.split("/")[1:], a_path.split("/")[1:]
    for i, g in enumerate(g_parts):
        g_param = _GATEWAY_PARAM.match(g)
        if g_param and g_param.group(1):  # greedy: one or more segments, whatever they are
            return i == len(g_parts) - 1 and len(a_parts) > i
        if i >= len(a_parts):
            return False
        a_param = _PARAM.match(a_parts[i])
        if a_param and a_param.group(2) == "path":
            return False  # the app takes several segments here: only a greedy route does
        if g_param:
            continue  # one segment, literal or a parameter of the app's
        if a_param or g != a_parts[i]:
            return False  # a literal cannot take every value of a parameter, nor another literal
    return len(g_parts) == len(a_parts)


def _function_for(path: str) -> str:
    """The function whose app serves ``path`` on AWS: a webhook's own, else the api's."""
    webhooks = {p.route: p.name for p in everyone()}
    return webhooks.get(path, "api")


def _specificity(route: Route) -> tuple[int, int, int]:
    # API Gateway prefers an exact method and path, then a greedy variable, then $default.
    parts = route[1].split("/")
    greedy = sum(1 for p in parts if p.endswith("+}"))
    params = sum(1 for p in parts if p.startswith("{"))
    return (greedy, params, route[0] == "ANY")


def test_every_route_of_the_app_is_routed_to_its_function() -> None:
    app, gateway = _app_routes(), _gateway_routes()
    assert len(app) >= 20, "the app's routes were not found"
    unreachable: set[Route] = set()
    wrong: list[str] = []
    for route in sorted(app):
        matches = sorted((g for g in gateway if covers(g, route)), key=_specificity)
        if not matches:
            unreachable.add(route)
            continue
        expected = _function_for(route[1])
        if gateway[matches[0]] != expected:
            wrong.append(f"{route} goes to {gateway[matches[0]]}, not {expected}")
    assert wrong == []
    # Only what is left out on purpose answers API Gateway's 404.
    assert unreachable == NOT_ON_AWS


def test_every_api_gateway_route_leads_to_a_route_of_the_app() -> None:
    app, gateway = _app_routes(), _gateway_routes()
    dead = [g for g in gateway if not any(covers(g, a) for a in app)]
    assert dead == []
    # Each route's function has an integration: main.tf passes every function but the worker.
    call = next(c.body for c in items("module", files=[TERRAFORM / "main.tf"]) if c.name == "api")
    assert "k != \"worker\"" in ref(call["invoke_arns"])
    assert set(gateway.values()) == {"slack", "telegram", "discord", "api"}


def test_the_routes_left_out_are_served_by_the_app() -> None:
    # A route named here that the app no longer serves would make the exception meaningless.
    assert NOT_ON_AWS.issubset(_app_routes())


@pytest.mark.parametrize(("gateway", "app", "expected"), [
    (("GET", "/v1/models"), ("GET", "/v1/models"), True),
    (("POST", "/v1/models"), ("GET", "/v1/models"), False),
    (("ANY", "/v1/models"), ("GET", "/v1/models"), True),
    (("GET", "/"), ("GET", "/"), True),
    (("GET", "/"), ("GET", "/admin"), False),
    (("GET", "/web/{name}"), ("GET", "/web/{name}"), True),
    (("GET", "/web/{file}"), ("GET", "/web/{name}"), True),
    (("GET", "/web/style.css"), ("GET", "/web/{name}"), False),
    (("GET", "/v1/{proxy+}"), ("GET", "/v1/admin/users/{platform}/{user}"), True),
    (("GET", "/v1/{proxy+}"), ("GET", "/v1"), False),
    (("GET", "/v1/documents"), ("GET", "/v1/documents/{document_id}"), False),
    (("GET", "/files/{name}"), ("GET", "/files/{name:path}"), False),
    (("GET", "/files/{proxy+}"), ("GET", "/files/{name:path}"), True),
])
def test_the_route_match_follows_api_gateways_rules(gateway: Route, app: Route,
                                                     expected: bool) -> None:
    assert covers(gateway, app) is expected
