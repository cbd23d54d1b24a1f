"""De-duplication, for both queues: the one place a platform's second delivery of one event is
dropped.

Platforms deliver an event again when they are not sure it arrived (Slack when it had no
answer within 3 seconds, Telegram until it gets a 200). Every delivery is recorded once, in
``inbound_deliveries`` under its platform's delivery id, by one statement
(:meth:`Deliveries.accept`); a delivery recorded before is not accepted again:

- The Postgres queue (shared/queue/postgres.py) records the deliveries a webhook accepts, and
  queues their jobs in the same statement: an accept is never sent again, so a delivery
  recorded before is a redelivery, and nothing more is queued for it.
- On SQS (shared/queue/sqs.py) the webhook holds no database: it sends every delivery, each
  under a send id of its own (``sent_as``), and the worker records a batch before running it.
  A delivery recorded under another send is a copy, and is dropped; one recorded under the
  same send is that message back (SQS's retry, a redrive from the dead-letter queue) and runs
  again. Every delivery is answered once.

A caller writes more with each delivery accepted, in the same statement (:class:`OnAccept`):
the Postgres queue, the delivery's job; Slack, the mark of the thread a question was asked in
(functions/slack/threads.py), so that the thread is known from the moment the question is
accepted. The composition layer hands a queue the platforms' hooks: this module knows none.

It imports no database driver: the webhooks' cold path on SQS loads it (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from shared.crypto import KeyRing
    from shared.db import Database


@dataclass(frozen=True)
class Delivery:
    """One platform delivery to record, with the job that answers it."""

    platform: str
    delivery_id: str  # the platform's own: Slack's event_id, Telegram's update_id, ...
    kind: str  # the job's
    payload: dict[str, Any]  # the job's, whole (what hooks read)
    sent_as: str | None = None  # the send carrying it (SQS); None: an accept, never sent again


@dataclass(frozen=True)
class OnAccept:
    """What a caller writes with the deliveries accepted, in the statement that accepts them.

    ``columns`` are the hook's own input columns with their types (``"slack_thread text"``,
    named for the hook: every hook's columns share one row), ``values`` their values for one
    delivery (JSON: bytes go as base64), and ``sql`` a data-modifying statement over
    ``accepted``, the deliveries accepted now with every hook's columns. It sees the database
    as the statement began (Postgres's rule for data-modifying ``WITH``).
    """

    columns: str
    values: Callable[[KeyRing, Delivery], dict[str, Any]]
    sql: str


class Deliveries:
    """The record of platform deliveries, and ``on_accept``'s writes with each one accepted.

    ``sends``: the deliveries come in sends (SQS), and one recorded under the same send is
    accepted again; without, a delivery recorded before never is, and the statement does not
    look for it (the Postgres queue: the webhook's hot path, docs/benchmarks.md).
    """

    def __init__(self, db: Database, on_accept: Sequence[OnAccept] = (), *,
                 sends: bool = False) -> None:
        self._db = db
        self._hooks = tuple(on_accept)
        self._sends = sends
        self._sql = _statement(self._hooks, sends=sends)

    async def accept(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Record ``deliveries`` in one statement; whether each one is accepted (new, or its
        own send back). :class:`~shared.errors.StorageError` if the database cannot say."""
        if not deliveries:
            return []
        if not self._sends and any(d.sent_as is not None for d in deliveries):
            raise ValueError("a delivery with a send, to a record of accepts")
        firsts: dict[tuple[str, str, str | None], int] = {}
        for n, d in enumerate(deliveries):
            firsts.setdefault(_tag(d), n)
        rows = [self._row(n, deliveries[n]) for n in firsts.values()]
        async with self._db.connection() as conn:
            # The batch travels as one JSON document: one C-speed dump here, one parse there.
            cur = await conn.execute(self._sql, (json.dumps(rows),))
            accepted = {cast(int, r["n"]) for r in await cur.fetchall()}
        return [_accepted(n, firsts[_tag(d)], d, accepted) for n, d in enumerate(deliveries)]

    def _row(self, n: int, delivery: Delivery) -> dict[str, Any]:
        row: dict[str, Any] = {"n": n, "platform": delivery.platform,
                               "delivery_id": delivery.delivery_id, "sent_as": delivery.sent_as}
        for hook in self._hooks:
            row |= hook.values(self._db.keys, delivery)
        return row


def _tag(d: Delivery) -> tuple[str, str, str | None]:
    return d.platform, d.delivery_id, d.sent_as


def _accepted(n: int, first: int, delivery: Delivery, accepted: set[int]) -> bool:
    """Whether the ``n``th delivery of a batch is accepted (``first``: the first with its tag,
    the one recorded). Here a redelivery, or a copy of a delivery another send carries, is
    dropped."""
    if delivery.sent_as is None:  # an accept: a second one in the batch is a redelivery
        return n == first and first in accepted
    return first in accepted  # a send: the same message twice runs, as it would twice apart


def _statement(hooks: Sequence[OnAccept], *, sends: bool) -> str:
    """The one statement that records deliveries and runs ``hooks`` for those accepted."""
    columns = "".join(f", {hook.columns}" for hook in hooks)
    steps = "".join(f", on_accept_{i} AS ({hook.sql})" for i, hook in enumerate(hooks))
    return (  # the hooks' SQL is the code's own, never a value
        "WITH input AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS t(n int, platform text,"  # noqa: S608
        f" delivery_id text, sent_as text{columns})),"
        # In key order: two batches that share deliveries wait on each other, never deadlock.
        " recorded AS (INSERT INTO inbound_deliveries (platform, delivery_id, sent_as)"
        " SELECT platform, delivery_id, sent_as FROM input ORDER BY platform, delivery_id, n"
        " ON CONFLICT (platform, delivery_id) DO NOTHING"
        " RETURNING platform, delivery_id, sent_as),"
        # Accepted: recorded now, or recorded before under the same send (SQS's message back).
        " accepted AS (SELECT i.* FROM input i JOIN recorded r USING (platform, delivery_id)"
        " WHERE r.sent_as IS NOT DISTINCT FROM i.sent_as"
        + (" UNION ALL SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM inbound_deliveries d"
           " WHERE d.platform = i.platform AND d.delivery_id = i.delivery_id"
           " AND d.sent_as = i.sent_as)" if sends else "")
        + f"){steps} SELECT n FROM accepted"  # noqa: S608 - the code's own SQL
    )
