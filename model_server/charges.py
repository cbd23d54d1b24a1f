"""What one chat request costs its user in tokens, charged to the token budget once.

The chat route (:mod:`model_server.completions`) makes a :class:`Charge` and holds the most the
request can cost before it calls the engine, lets the engine fill its usage, and settles it
however the request ends: an answer, a client that hangs up, a timeout, an engine failure
mid-stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_server.engines.base import Usage
from model_server.gateway import Gateway
from shared.chat import Message, prompt_tokens
from shared.ratelimit import Mark

# What the engine adds to a prompt beyond the estimate is its template's doing: tens of tokens.
# More is a prompt the estimator undercounts, which is not to be held on every request after.
MAX_SURPLUS = 256


@dataclass
class Charge:
    """What one chat request costs its user, charged once however it ends.

    The engine's own usage when it reported it. When it did not (the answer was cut short: the
    client left, a timeout, the engine failed mid-stream; or the engine never reports usage)
    but the engine did work on the request, an estimate: the prompt by the project's
    estimator, since the engine read all of it, plus the answer's tokens counted as they
    passed. Else a user could spend the engine for free by hanging up before the end. The
    tokens metrics count exactly what is charged.

    The most the request can cost (its prompt by estimate and every answer token it may ask
    for) is held from the budget when the request is checked against it (:meth:`hold`), and
    what the work did not use is given back when it settles. Otherwise every answer running
    at once would pass the budget's check before any was charged, and a user with eight
    streams open, over one gateway process or several, would overshoot the budget by all of
    them (``make bench``'s gateways part measures how far).
    """

    gw: Gateway
    sub: str
    messages: list[Message]
    began: Mark
    usage: Usage = field(default_factory=Usage)
    engine_worked: bool = False
    held: int = 0
    estimate: int = 0  # the prompt's, by the project's estimator
    _done: bool = False

    def hold(self, max_tokens: int) -> int | None:
        """Hold the prompt and ``max_tokens`` of answer from the budget: None if held, else
        the budget's Retry-After (nothing is held then). The prompt is the estimator's count
        plus the most the engine has been seen to add to one (its chat template's markers, a
        default system prompt) in this process."""
        self.estimate = prompt_tokens(self.messages)
        held = self.estimate + self.gw.prompt_surplus + max_tokens
        retry = self.gw.budget.take(self.sub, held, began=self.began)
        if retry is None:
            self.held = held
        return retry

    def settle(self) -> None:
        if self._done:
            return
        self._done = True
        usage = self.usage
        if usage.reported and self.estimate:
            self.gw.prompt_surplus = max(self.gw.prompt_surplus,
                                         min(usage.prompt_tokens - self.estimate, MAX_SURPLUS))
        if not usage.reported and self.engine_worked:
            usage.settle(prompt_tokens(self.messages))
            self.gw.metrics.estimated_usage.inc()
        self.gw.metrics.prompt_tokens.inc(usage.prompt_tokens)
        self.gw.metrics.completion_tokens.inc(usage.completion_tokens)
        self.gw.budget.charge(self.sub, usage.prompt_tokens + usage.completion_tokens
                              - self.held, began=self.began)
