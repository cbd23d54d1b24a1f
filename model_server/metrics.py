"""Prometheus metrics of the gateway: requests, tokens, latency, and what waits for the engine."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """One registry per app, so two apps in one process (tests) do not collide."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "charla_requests", "Requests answered, by route and status.",
            ["route", "status"], registry=r,
        )
        self.latency = Histogram(
            "charla_request_seconds", "Time to the whole answer, by route.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.first_token = Histogram(
            "charla_first_token_seconds", "Time to the first streamed token.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "charla_tokens", "Tokens processed, by kind (prompt, completion, embedding).",
            ["kind"], registry=r,
        )
        self.estimated_usage = Counter(
            "charla_usage_estimated",
            "Chat requests charged by estimate because the engine reported no usage (the "
            "client left, a timeout, the engine failed mid-answer); the tokens counters hold "
            "the estimates.", registry=r,
        )
        self.inflight = Gauge(
            "charla_engine_inflight", "Requests being answered by the engine now.", registry=r,
        )
        self.queue_depth = Gauge(
            "charla_engine_queue_depth",
            "Requests waiting for a free engine slot (in flight beyond the engine's slots).",
            registry=r,
        )
        self.rate_limited = Counter(
            "charla_rate_limited", "Requests refused by a limit, by which limit.",
            ["limit"], registry=r,
        )
        # Labelled children looked up once: a labels() call costs more than the increment.
        self.chat_latency = self.latency.labels("chat")
        self.embeddings_latency = self.latency.labels("embeddings")
        self.prompt_tokens = self.tokens.labels("prompt")
        self.completion_tokens = self.tokens.labels("completion")
        self.embedding_tokens = self.tokens.labels("embedding")
        self.limited_requests = self.rate_limited.labels("requests")
        self.limited_tokens = self.rate_limited.labels("tokens")
        self._answers: dict[tuple[str, int], Counter] = {}

    def answered(self, route: str, status: int) -> None:
        """Count one answer; ``route`` must come from a fixed set (never a raw client path)."""
        counter = self._answers.get((route, status))
        if counter is None:
            counter = self._answers[(route, status)] = self.requests.labels(route, str(status))
        counter.inc()

    def engine_enter(self, slots: int) -> None:
        self.inflight.inc()
        self._set_queue(slots)

    def engine_leave(self, slots: int) -> None:
        self.inflight.dec()
        self._set_queue(slots)

    def _set_queue(self, slots: int) -> None:
        inflight = self.inflight._value.get()
        self.queue_depth.set(max(0.0, inflight - slots))
