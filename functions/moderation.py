"""Moderation as the worker and the API use it: which rules apply, the guard model, the refusal.

Every incoming message and every answer is checked against the policy in force where it was
asked (``shared/moderation.py``: the deployment's rules, plus those of its channel, workspace,
API client and readable collections) and, when ``CHARLA_MODERATION_CLASSIFIER`` names one, by
a guard model served by a model server (Llama Guard style: it answers ``safe``, or ``unsafe``
and category codes). A message or answer that trips a check is replaced by one short refusal
in the asker's language, and the event is recorded without its text.

The guard model failing (unreachable, too slow, an answer that is not a verdict) fails closed
by default (``CHARLA_MODERATION_ON_ERROR``): the check raises the same 503 as an unreachable
model server, so the bots try again later and the API answers 503. A deployment that names a
classifier asked for every message to be judged; "closed" never lets an unjudged one through,
and never blames the asker with a refusal for an outage. "open" answers on the policy alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.model_client import ModelClient, ModelServerError
from shared.db import Database
from shared.errors import CharlaError
from shared.knowledge.language import ENGLISH, SPANISH, detect
from shared.knowledge.store import KnowledgeStore
from shared.moderation import (
    COLLECTION_PREFIX,
    Policy,
    Stage,
    StreamCheck,
    load_policy,
)
from shared.moderation_log import ModerationEvent, record_event
from shared.settings import Settings

log = logging.getLogger(__name__)

REFUSAL_EN = "I can't help with that."
REFUSAL_ES = "No puedo ayudar con eso."
WITHHELD = "[withheld by moderation]"  # stored in place of a blocked message or answer
POLICY_MODEL = "charla-policy"

# Llama Guard 3's hazard codes (the MLCommons taxonomy), named as OpenAI's moderation
# categories where one fits.
GUARD_CATEGORIES = {
    "S1": "violence", "S2": "illicit", "S3": "sexual", "S4": "sexual/minors",
    "S5": "defamation", "S6": "specialized-advice", "S7": "privacy",
    "S8": "intellectual-property", "S9": "illicit/violent", "S10": "hate",
    "S11": "self-harm", "S12": "sexual", "S13": "elections", "S14": "code-interpreter-abuse",
}
_SPANISH_MARKS = re.compile(r"[ñ¿¡áéíóú]", re.IGNORECASE)


def refusal(asked: str) -> str:
    """The refusal in the language of ``asked`` (Spanish or English)."""
    language = detect(asked)
    if language == SPANISH or (language != ENGLISH and _SPANISH_MARKS.search(asked)):
        return REFUSAL_ES
    return REFUSAL_EN


def parse_guard(answer: str) -> tuple[str, ...] | None:
    """A guard model's verdict: () for "safe", the categories for "unsafe" (at least one),
    None for anything else."""
    words = re.split(r"[\s,:;]+", answer.strip())
    if not words or words[0].lower() not in ("safe", "unsafe"):
        return None
    if words[0].lower() == "safe":
        return ()
    codes = [w for w in words[1:] if w]
    categories = {GUARD_CATEGORIES.get(c.upper(), c.lower()) for c in codes}
    return tuple(sorted(categories)) or ("unsafe",)


@dataclass(frozen=True)
class Trip:
    """A check that a message or an answer did not pass."""

    stage: Stage
    source: str  # "policy" | "classifier"
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Judgement:
    """What ``/v1/moderations`` reports for one text."""

    categories: tuple[str, ...]  # flagged, by the policy or the classifier
    known: tuple[str, ...]  # every category the checks in force can flag


def _exchange(question: str, answer: str) -> list[dict[str, Any]]:
    """What the guard reads to judge ``answer``: the question, then the answer."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def classifier_unavailable() -> ModelServerError:
    return ModelServerError(503, "the moderation classifier is unavailable; try again shortly",
                            "5", "moderation_unavailable")


class Moderation:
    """The checks for one deployment; one per process (the policy is read once)."""

    def __init__(self, settings: Settings, model: ModelClient, db: Database | None, *,
                 policy: Policy | None = None) -> None:
        self.settings = settings
        self._db = db
        if policy is None and (settings.moderation_policy or "").lower() != "off":
            policy = load_policy(settings.moderation_policy)
        self.policy = policy
        self.classifier = settings.moderation_classifier
        url = settings.moderation_classifier_url
        self._guard = model
        self._own_guard: ModelClient | None = None
        if self.classifier and url and url != settings.model_server_url:
            # The guard model on a model server of its own.
            self._own_guard = ModelClient(dataclasses.replace(settings, model_server_url=url))
            self._guard = self._own_guard

    @property
    def model_name(self) -> str:
        return f"{POLICY_MODEL}+{self.classifier}" if self.classifier else POLICY_MODEL

    async def close(self) -> None:
        if self._own_guard is not None:
            await self._own_guard.close()

    async def scopes(self, principals: Sequence[str],
                     collections: Sequence[str] | None = None) -> tuple[str, ...]:
        """The policy scopes for someone asking as ``principals`` (most specific first):
        those, and ``collection:NAME`` for the collections they may read (looked up only
        when the policy has collection scopes; ``collections`` narrows them)."""
        if self.policy is None:
            return ()
        names: list[str] = []
        if self.policy.has_collection_scopes and self._db is not None:
            readable = await KnowledgeStore(self._db).readable(principals)
            names = [c.name for c in readable if collections is None or c.name in collections]
        return (*principals, *(COLLECTION_PREFIX + n for n in names))

    async def check_input(self, text: str, scopes: Sequence[str], *, sub: str) -> Trip | None:
        """Whether ``text``, a message someone sent, may be answered."""
        if self.policy is not None:
            verdict = self.policy.check(text, "input", scopes)
            if verdict.flagged:
                return Trip("input", "policy", verdict.categories)
        if not text.strip():
            return None
        return await self._classified("input", [{"role": "user", "content": text}], sub)

    def stream_check(self, scopes: Sequence[str]) -> StreamCheck | None:
        """A cheap policy check for an answer as it grows (None: no rule for answers)."""
        if self.policy is None:
            return None
        matcher = self.policy.matcher(scopes, "output")
        return StreamCheck(matcher) if matcher.categories else None

    async def check_output(self, question: str, answer: str, scopes: Sequence[str], *,
                           sub: str) -> Trip | None:
        """Whether ``answer`` (to ``question``) may be shown: the policy over the whole of
        it, then the classifier."""
        if self.policy is not None:
            verdict = self.policy.check(answer, "output", scopes)
            if verdict.flagged:
                return Trip("output", "policy", verdict.categories)
        if not answer.strip():
            return None
        return await self._classified("output", _exchange(question, answer), sub)

    async def judge_streamed(self, question: str, answer: str, *, sub: str) -> Trip | None:
        """The guard model's verdict on a streamed answer once it is complete (the policy
        checked it while it streamed). Its text has been shown already, so a guard that cannot
        answer is logged and the stream ends as it would have: nothing is left to hold back."""
        if not answer.strip():
            return None
        return await self._classified("output", _exchange(question, answer), sub, shown=True)

    async def judge(self, text: str, scopes: Sequence[str], *, sub: str) -> Judgement:
        """Every category ``text`` trips, under the rules of both stages and the classifier."""
        flagged: set[str] = set()
        known: set[str] = set()
        if self.policy is not None:
            matcher = self.policy.matcher(scopes)
            known.update(matcher.categories)
            flagged.update(matcher.check(text).categories)
        trip = await self._classified("input", [{"role": "user", "content": text}], sub)
        if trip is not None:
            flagged.update(trip.categories)
        if self.classifier:
            known.update(GUARD_CATEGORIES.values())
        return Judgement(tuple(sorted(flagged)), tuple(sorted(known | flagged)))

    async def record(self, trip: Trip, *, platform: str, principal: str, subject: str) -> None:
        """Count the event and keep it in the audit trail, without the text; a database
        failure is logged, never turned into a failed answer."""
        log.info("moderation: %s withheld by %s (%s) for %s", trip.stage, trip.source,
                 ", ".join(trip.categories), principal)
        if self._db is None:
            return
        event = ModerationEvent(platform=platform, principal=principal, subject=subject,
                                stage=trip.stage, source=trip.source,
                                categories=trip.categories)
        try:
            await record_event(self._db, event)
        except CharlaError:
            log.error("moderation event lost for %s: database unavailable", principal)

    async def _classified(self, stage: Stage, messages: list[dict[str, Any]], sub: str,
                          *, shown: bool = False) -> Trip | None:
        if not self.classifier:
            return None
        body = {"model": self.classifier, "messages": messages, "max_tokens": 24,
                "temperature": 0, "stream": False}
        try:
            result = await asyncio.wait_for(self._guard.complete(body, sub=sub),
                                            self.settings.moderation_classifier_timeout_s)
            verdict = parse_guard(str(result["choices"][0]["message"]["content"] or ""))
        except ModelServerError as exc:
            if exc.status == 429 and not shown:
                raise  # the person's own limit: the same answer as for the chat model
            self._failed(f"{exc.status} {exc.message}", shown)
            return None
        except TimeoutError:
            self._failed("timed out", shown)
            return None
        except (KeyError, IndexError, TypeError) as exc:
            self._failed(f"malformed answer ({exc.__class__.__name__})", shown)
            return None
        if verdict is None:
            self._failed("its answer is not a verdict", shown)
            return None
        return Trip(stage, "classifier", verdict) if verdict else None

    def _failed(self, reason: str, shown: bool) -> None:
        """Fail open (log, and go on with the policy alone) or closed (raise 503); for an
        answer already ``shown``, only log."""
        if shown:
            log.warning("moderation classifier failed (%s) on a streamed answer, already shown",
                        reason)
            return None
        if self.settings.moderation_on_error == "open":
            log.warning("moderation classifier failed (%s); answering on the policy alone",
                        reason)
            return None
        log.warning("moderation classifier failed (%s); holding the answer back", reason)
        raise classifier_unavailable()
