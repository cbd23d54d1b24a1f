"""One request allowance per API client, across every route that needs a token (slowapi).

The design's limiter: one slowapi ``Limiter`` on ``app.state.limiter``, keyed on the verified
token's subject (never an address), and one limit shared by every route that needs a token
(``shared_limit``, scope ``client``), so that a client refused on one route is refused on all
of them. :func:`limit_routes` puts it on the app's whole route table in one place, so a route
added later is limited without anyone having to remember it; a request that carries no
verified token (the public paths: webhooks, checked by their platform's signature instead,
``/healthz`` and the pages and their files) is not counted.

Routes weigh what they cost the stack, in tenths of a request: an answer, a moderation check
and a document upload do the work; a read (the models, collections, passages, documents, the
admin views) or a delete is a tenth. So the allowance (``CHARLA_API_RATE_LIMIT``) is in
answers: ``60/minute`` is sixty questions, or six hundred reads. slowapi passes a request
whose weight fits in what is left; the limit it counts is the allowance plus nine tenths
(:func:`in_tenths`), so a question is answered while any of the allowance is left (as the
gateway's token budget does) and the chat page's own reads do not cost anyone their last
question; reads go at most nine tenths of a request past the allowance. No request weighs
more than the whole limit (with ``2/hour``, an upload takes all of it).

The window is fixed, as slowapi counts it: every request is counted, refused ones too, so a
client that keeps knocking stays refused until its window ends, and no longer. A refused
request answers 429 with a true ``Retry-After`` (when that window ends) before its route runs:
it reaches neither the model server nor the audit log. Answers that pass carry no
``Retry-After`` and no ``X-RateLimit-*`` headers (``headers_enabled=False``).

If the storage (Redis) goes away, slowapi counts in this process instead, with one warning,
and tries the storage again after 1, 2, 4 ... 32 s. slowapi also logs one WARNING line per
refusal (the scaled limit, the subject and the scope): no token, no traceback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

from limits import RateLimitItem
from limits.storage import MemoryStorage
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.http import TokenUser, json_error, subject_of
from shared.privacy import API_LIMIT_PREFIX
from shared.ratelimit import parse_rate, storage_options
from shared.settings import Settings

UNIT = 10  # a request, in the tenths that weights are counted in
WEIGHTS: dict[tuple[str, str], int] = {
    ("POST", "/v1/chat/completions"): UNIT,  # retrieval, then the model's answer
    ("POST", "/v1/moderations"): UNIT,  # the policy, and the guard model where there is one
    ("POST", "/v1/documents"): 5 * UNIT,  # a whole document parsed, chunked and embedded
}
READ = 1  # any other route
SCOPE = "client"  # the one limit every route shares: its counter is the client's, not a route's
# Redis tells a counter's time to live rounded to the nearest second: so much more on a
# Retry-After, so that a client that waits as long as it is told is never early.
ROUNDING_S = 0.5


def weight(method: str, path: str) -> int:
    """What a request costs, in tenths of a request (``path``: the route's template)."""
    return WEIGHTS.get((method, path), READ)


def in_tenths(rate: RateLimitItem) -> RateLimitItem:
    """The limit slowapi counts for ``rate`` (requests): in tenths, plus nine of them.

    slowapi passes a request whose weight fits in what is left; the nine tenths make that
    "while any of the allowance is left" for an answer: ``60/minute`` is ``609/minute``, so
    after 59 questions the sixtieth passes if the reads among them came to less than one.
    """
    return type(rate)(rate.amount * UNIT + UNIT - 1, rate.multiples, rate.namespace)


def make_limiter(settings: Settings) -> Limiter:
    """The API's limiter: one per app, on ``app.state.limiter``."""
    uri = settings.rate_limit_storage
    return Limiter(
        key_func=subject_of,
        storage_uri=uri,
        storage_options=storage_options(uri),
        key_prefix=API_LIMIT_PREFIX,
        strategy="fixed-window",
        headers_enabled=False,  # no Retry-After on an answer that passed
        in_memory_fallback_enabled=True,
    )


def _anonymous(request: Request) -> bool:
    """No verified token: a public path (the auth middleware let it by), never counted."""
    return not isinstance(request.scope.get("user"), TokenUser)


def limit_routes(routes: Iterable[BaseRoute], limiter: Limiter, rate: str,
                 public: Sequence[str]) -> list[BaseRoute]:
    """``routes``, each one whose path needs a token under the client's shared limit.

    ``rate`` is the allowance in requests (``CHARLA_API_RATE_LIMIT``); each route costs its
    :func:`weight`, capped at the whole limit. A route on a template that also serves
    public paths (``/web/{name}``) is limited for the requests that carry a token.
    """
    configured = parse_rate(rate)
    counted = in_tenths(configured)
    shared = str(counted)  # "609 per 1 minute"
    refused_as = str(configured)  # what a refusal says: "60 per 1 minute"
    wrapped: list[BaseRoute] = []
    names: set[str] = set()
    for route in routes:
        if not isinstance(route, Route):
            raise TypeError(f"{route!r}: only plain routes can be limited (functions/limit.py)")
        if route.path in public:
            wrapped.append(route)
            continue
        # slowapi files a limit under the endpoint's module and name: two endpoints that
        # share one would each be charged twice.
        name = f"{route.endpoint.__module__}.{route.endpoint.__name__}"
        if name in names:
            raise ValueError(f"two limited routes share the endpoint name {name}")
        names.add(name)
        decorate = limiter.shared_limit(shared, scope=SCOPE, cost=_cost(route.path, counted),
                                        error_message=refused_as, exempt_when=_anonymous)
        wrapped.append(Route(route.path, decorate(route.endpoint), methods=route.methods,
                             name=route.name, include_in_schema=route.include_in_schema))
    return wrapped


def _cost(path: str, counted: RateLimitItem) -> Callable[[Request], int]:
    """A request's weight on the route at ``path``, at most the whole limit."""
    def cost(request: Request) -> int:
        return min(weight(request.method, path), counted.amount)

    return cost


async def rate_limit_exceeded(request: Request, exc: Exception) -> Response:
    """429 in OpenAI's error shape, with ``Retry-After``: when the window that refused ends."""
    assert isinstance(exc, RateLimitExceeded)
    item, keys = request.state.view_rate_limit  # the limit that refused, and its key
    counting = request.app.state.limiter.limiter  # the storage's, or memory's while it is down
    try:
        reset_at, _left = counting.get_window_stats(item, *keys)
        late = 0.0 if isinstance(counting.storage, MemoryStorage) else ROUNDING_S
        retry = max(1, math.ceil(float(reset_at) + late - time.time()))
    except Exception:  # noqa: BLE001 - storage gone since the count: at most a window
        retry = item.get_expiry()
    return json_error(429, f"rate limit exceeded ({exc.detail}); retry in {retry} s",
                      "rate_limit_exceeded", "rate_limit_exceeded",
                      headers={"Retry-After": str(retry)})

