"""Retention: what is kept how long, and purging what is past it in small batches.

- Conversations (``CHARLA_CONVERSATION_RETENTION_DAYS``, default 90): turns older than that are
  deleted, and a conversation left empty with them. 0 keeps no history at all: the bots answer
  each message on its own and store no turn (see the worker).
- The API audit log and moderation events (``CHARLA_AUDIT_RETENTION_DAYS``, default 30): older
  rows are deleted; 0 keeps the usage figures (and moderation events, which have no bodies)
  but no bodies.
- Jobs, remembered deliveries and posted-message records (``CHARLA_JOB_RETENTION_DAYS``,
  default 7), once finished; and, as long, what a platform writes with each delivery accepted
  (shared/queue/dedup.py), by the rules the composition layer passes in the policy
  (``with_deliveries``: the marks of Slack threads the bot was asked in,
  functions/slack/threads.py, go that long after the thread's last question).
- Forget records (digests of people who asked to be forgotten): 15 days.

Every statement touches at most ``batch`` rows, by primary key, so a purge never holds long
locks on a table live traffic writes to; the worker runs it every few minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.db import Database

BATCH = 500
# How long a forget is remembered (shared/privacy.py): past SQS's longest message retention.
FORGOTTEN_DAYS = 15


@dataclass(frozen=True)
class Rule:
    """What one purge removes, and how."""

    name: str  # what the count means, for people
    rows: str  # SELECT of the key columns of the rows due, with %(days)s
    act: str  # the statement applied to one batch: {rows} is replaced by the batch's SELECT
    key: str = "id"


@dataclass(frozen=True)
class Policy:
    conversation_days: int
    audit_days: int
    job_days: int
    # What is written with each delivery accepted, kept as long as the deliveries: the rules
    # of the platforms that write some (Slack's thread marks, functions/slack/threads.py).
    with_deliveries: tuple[Rule, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, with_deliveries: Sequence[Rule] = ()) -> Policy:
        return cls(settings.conversation_retention_days, settings.audit_retention_days,
                   settings.job_retention_days, tuple(with_deliveries))


def _rules(policy: Policy) -> list[tuple[Rule, int]]:
    rules: list[tuple[Rule, int]] = []
    if policy.conversation_days > 0:
        rules.append((Rule(
            "turns",
            "SELECT id FROM turns WHERE created_at < now() - make_interval(days => %(days)s)",
            "DELETE FROM turns WHERE id IN ({rows})"), policy.conversation_days))
        rules.append((Rule(
            "empty conversations",
            "SELECT id FROM conversations c WHERE updated_at < now() - make_interval(days =>"
            " %(days)s) AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.conversation_id = c.id)",
            "DELETE FROM conversations WHERE id IN ({rows})"), policy.conversation_days))
    if policy.audit_days > 0:
        rules.append((Rule(
            "moderation events",
            "SELECT id FROM moderation_events WHERE at < now() - make_interval(days =>"
            " %(days)s)",
            "DELETE FROM moderation_events WHERE id IN ({rows})"), policy.audit_days))
        rules.append((Rule(
            "API exchanges",
            "SELECT id FROM api_exchanges WHERE created_at < now() - make_interval(days =>"
            " %(days)s)",
            "DELETE FROM api_exchanges WHERE id IN ({rows})"), policy.audit_days))
    else:
        rules.append((Rule(
            "API exchange bodies",
            "SELECT id FROM api_exchanges WHERE (request_messages IS NOT NULL OR answer IS NOT"
            " NULL OR body_sealed IS NOT NULL) AND %(days)s = 0",
            "UPDATE api_exchanges SET request_messages = NULL, answer = NULL,"
            " body_sealed = NULL, key_id = NULL WHERE id IN ({rows})"), 0))
    rules += [
        (Rule("finished jobs",
               "SELECT id FROM jobs WHERE state IN ('done', 'failed') AND finished_at < now()"
               " - make_interval(days => %(days)s)",
               "DELETE FROM jobs WHERE id IN ({rows})"), policy.job_days),
        (Rule("remembered deliveries",
               "SELECT platform, delivery_id FROM inbound_deliveries WHERE received_at < now()"
               " - make_interval(days => %(days)s)",
               "DELETE FROM inbound_deliveries WHERE (platform, delivery_id) IN ({rows})",
               key="platform, delivery_id"), policy.job_days),
        *((rule, policy.job_days) for rule in policy.with_deliveries),
        (Rule("forget records",
               "SELECT digest FROM forgotten WHERE forgotten_at < now()"
               " - make_interval(days => %(days)s)",
               "DELETE FROM forgotten WHERE digest IN ({rows})", key="digest"), FORGOTTEN_DAYS),
        (Rule("posted-message records",
               "SELECT delivery, part FROM outbound_messages WHERE updated_at < now()"
               " - make_interval(days => %(days)s)",
               "DELETE FROM outbound_messages WHERE (delivery, part) IN ({rows})",
               key="delivery, part"), policy.job_days),
    ]
    return rules


async def due(db: Database, policy: Policy) -> dict[str, int]:
    """How many rows each rule would remove now (``charla purge --dry-run``)."""
    counts: dict[str, int] = {}
    async with db.connection() as conn:
        for rule, days in _rules(policy):
            cur = await conn.execute(
                f"SELECT count(*) AS n FROM ({rule.rows}) due",  # noqa: S608
                {"days": days})
            row = await cur.fetchone()
            counts[rule.name] = int(cast(int, row["n"])) if row else 0
    return counts


async def purge(db: Database, policy: Policy, *, batch: int = BATCH) -> dict[str, int]:
    """Remove what is past retention, ``batch`` rows per statement (each its own transaction)."""
    done: dict[str, int] = {}
    for rule, days in _rules(policy):
        total = 0
        statement = rule.act.format(rows=f"{rule.rows} ORDER BY {rule.key} LIMIT %(batch)s")
        while True:
            async with db.connection() as conn:
                cur = await conn.execute(statement, {"days": days, "batch": batch})
            total += cur.rowcount
            if cur.rowcount < batch:
                break
        done[rule.name] = total
    return done


def describe(counts: dict[str, Any]) -> str:
    parts = [f"{n} {name}" for name, n in counts.items() if n]
    return ", ".join(parts) if parts else "nothing"
