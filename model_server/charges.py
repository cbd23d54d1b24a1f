"""What one chat request costs its user in tokens, charged to the token budget once.

The chat route (:mod:`model_server.completions`) makes a :class:`Charge` before it calls the
engine, lets the engine fill its usage, and settles it however the request ends: an answer, a
client that hangs up, a timeout, an engine failure mid-stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_server.engines.base import Usage
from model_server.gateway import Gateway
from shared.chat import Message, prompt_tokens
from shared.ratelimit import Mark


@dataclass
class Charge:
    """What one chat request costs its user, charged once however it ends.

    The engine's own usage when it reported it. When it did not (the answer was cut short: the
    client left, a timeout, the engine failed mid-stream; or the engine never reports usage)
    but the engine did work on the request, an estimate: the prompt by the project's
    estimator, since the engine read all of it, plus the answer's tokens counted as they
    passed. Else a user could spend the engine for free by hanging up before the end. The
    tokens metrics count exactly what is charged.
    """

    gw: Gateway
    sub: str
    messages: list[Message]
    began: Mark
    usage: Usage = field(default_factory=Usage)
    engine_worked: bool = False
    _done: bool = False

    def settle(self) -> None:
        if self._done:
            return
        self._done = True
        usage = self.usage
        if not usage.reported and self.engine_worked:
            usage.settle(prompt_tokens(self.messages))
            self.gw.metrics.estimated_usage.inc()
        self.gw.metrics.prompt_tokens.inc(usage.prompt_tokens)
        self.gw.metrics.completion_tokens.inc(usage.completion_tokens)
        self.gw.budget.charge(self.sub, usage.prompt_tokens + usage.completion_tokens,
                              began=self.began)
