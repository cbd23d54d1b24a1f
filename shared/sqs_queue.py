"""The job queue on AWS: SQS between the webhook functions and the worker function.

Webhooks enqueue through :class:`SqsQueue`. De-duplication stays in Postgres (the
``inbound_deliveries`` table, one conditional insert), since SQS standard queues have none: a
delivery seen before sends nothing. If the send fails after the delivery was recorded, the
record is removed again and :class:`QueueError` raised, so the webhook answers 503 and the
platform delivers again: nothing accepted is lost, nothing is answered twice. Deliveries that
arrive while a send is in flight go together in the next one (SendMessageBatch). A message
carries its job's readable fields and, sealed with the database's data keys, the rest (what
people wrote, where the answer goes), as the Postgres queue stores them.

The worker does not take jobs: Lambda's event source mapping hands it batches of messages.
:class:`SqsBatch` is the queue one invocation settles its jobs with: a job to retry is reported
back (``batchItemFailures``) with its visibility set to the backoff, so SQS redelivers it then
and, after the queue's ``maxReceiveCount`` receives, moves it to the dead-letter queue; a job
given up goes to the dead-letter queue at once, with its error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.crypto import KeyRing
from shared.db import Database
from shared.errors import ConfigError, SealError, StorageError
from shared.queue import Job, open_payload, seal_payload
from shared.secrets import aws_client

log = logging.getLogger(__name__)

ON_LAMBDA = ("on AWS, Lambda's SQS event source mapping delivers jobs to the worker function; "
             "nothing takes them from SqsQueue")
MAX_BATCH = 10  # SendMessageBatch's limit
MAX_BATCH_BYTES = 240_000  # under SQS's 256 KiB for a whole batch
MAX_VISIBILITY_S = 43_200  # 12 hours
NOT_A_JOB = "(not a job)"


class QueueError(StorageError):
    """SQS could not be reached or refused a message."""


@dataclass(frozen=True)
class SqsJob(Job):
    """A job delivered by SQS: ``id`` is the message id, ``attempts`` its receive count."""

    receipt: str = ""
    body: str = ""


@dataclass(frozen=True)
class _Pending:
    key: tuple[str, str] | None
    body: str


Outcome = bool | Exception


class SqsQueue:
    """Enqueues jobs on one SQS queue; de-duplicates deliveries in Postgres."""

    def __init__(self, db: Database | None, queue_url: str | None, *,
                 client: Callable[[], Any] | None = None) -> None:
        if not queue_url:
            raise ConfigError("CHARLA_QUEUE=sqs needs CHARLA_SQS_QUEUE_URL")
        self.url = queue_url
        self._db = db
        self._make_client = client or (lambda: aws_client("sqs", connect_timeout=1.0,
                                                          read_timeout=2.0, attempts=2))
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._dead_letter_url: str | None = None
        self._waiting: list[tuple[_Pending, asyncio.Future[bool]]] = []
        self._drainer: asyncio.Task[None] | None = None

    # The webhooks' side.

    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        # What people wrote, and where the answer goes, travel and rest sealed, as in the
        # Postgres queue (shared/queue.py); the rest stays readable for operators.
        readable, sealed = seal_payload(self._db.keys if self._db else KeyRing(), kind, payload)
        message: dict[str, Any] = {"kind": kind, "payload": readable}
        if sealed is not None:
            message["sealed"] = base64.b64encode(sealed).decode()
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        if dedup is not None and self._db is None:
            raise ConfigError("de-duplicating deliveries needs DATABASE_URL")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((_Pending(dedup, body), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._take()
            try:
                outcomes = await self._accept([pending for pending, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _take(self) -> list[tuple[_Pending, asyncio.Future[bool]]]:
        """The next waiting deliveries that fit in one SendMessageBatch."""
        size, n = 0, 0
        for pending, _ in self._waiting[:MAX_BATCH]:
            size += len(pending.body.encode())
            if n and size > MAX_BATCH_BYTES:
                break
            n += 1
        batch, self._waiting = self._waiting[:n], self._waiting[n:]
        return batch

    async def _accept(self, batch: list[_Pending]) -> list[Outcome]:
        keys = [p.key for p in batch if p.key is not None]
        new = await self._remember(keys) if keys else set()
        senders: list[int] = []  # batch positions whose message goes out
        for i, pending in enumerate(batch):
            if pending.key is None:
                senders.append(i)
            elif pending.key in new:
                new.discard(pending.key)  # a second copy in the same batch is a redelivery
                senders.append(i)
        errors = await self._send([batch[i].body for i in senders]) if senders else []
        outcomes: list[Outcome] = [False] * len(batch)
        lost: list[tuple[str, str]] = []
        for i, error in zip(senders, errors, strict=True):
            outcomes[i] = True if error is None else QueueError(f"job not queued: {error}")
            key = batch[i].key
            if error is not None and key is not None:
                lost.append(key)
        if lost:
            await self._forget(lost)
        return outcomes

    async def _remember(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Record deliveries; return those that were new."""
        assert self._db is not None
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO inbound_deliveries (platform, delivery_id) SELECT * FROM"
                " unnest(%s::text[], %s::text[]) ON CONFLICT DO NOTHING"
                " RETURNING platform, delivery_id",
                ([k[0] for k in keys], [k[1] for k in keys]))
            rows = await cur.fetchall()
        return {(str(r["platform"]), str(r["delivery_id"])) for r in rows}

    async def _forget(self, keys: list[tuple[str, str]]) -> None:
        """The send failed: release the deliveries, so the platform's redelivery is taken."""
        assert self._db is not None
        try:
            async with self._db.connection() as conn:
                await conn.execute(
                    "DELETE FROM inbound_deliveries WHERE (platform, delivery_id) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                    ([k[0] for k in keys], [k[1] for k in keys]))
        except StorageError:
            log.error("%d deliveries were recorded but not queued, and the record could not be"
                      " released: they will not be answered (%s)", len(keys),
                      ", ".join(f"{p}:{d}" for p, d in keys))

    async def _send(self, bodies: list[str]) -> list[str | None]:
        """Send each body; per body, None or why it was not sent."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if len(bodies) == 1:
                await self._call("send_message", QueueUrl=self.url, MessageBody=bodies[0])
                return [None]
            answer = await self._call(
                "send_message_batch", QueueUrl=self.url,
                Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
        except (BotoCoreError, ClientError) as exc:
            reason = _reason(exc)
            log.warning("SQS refused %d messages: %s", len(bodies), reason)
            return [reason] * len(bodies)
        errors: list[str | None] = [None] * len(bodies)
        for failed in answer.get("Failed", []):
            errors[int(failed["Id"])] = str(failed.get("Code", "failed"))
        if any(errors):
            log.warning("SQS refused %d of %d messages", sum(map(bool, errors)), len(bodies))
        return errors

    # The worker's side (one Lambda invocation settles its batch through SqsBatch).

    async def change_visibility(self, job: SqsJob, delay_s: float) -> None:
        seconds = min(MAX_VISIBILITY_S, max(0, math.ceil(delay_s)))
        await self._guarded("change_message_visibility", QueueUrl=self.url,
                            ReceiptHandle=job.receipt, VisibilityTimeout=seconds)

    async def dead_letter(self, job: SqsJob, error: str) -> bool:
        """Put ``job`` on the dead-letter queue with its error; False if there is none."""
        url = await self._dead_letter_queue()
        if url is None:
            return False
        await self._guarded(
            "send_message", QueueUrl=url, MessageBody=job.body,
            MessageAttributes={
                "error": {"DataType": "String", "StringValue": error[:1000] or "failed"},
                "attempts": {"DataType": "Number", "StringValue": str(job.attempts)},
                "message_id": {"DataType": "String", "StringValue": job.id}})
        return True

    async def _dead_letter_queue(self) -> str | None:
        """The dead-letter queue named by the queue's redrive policy, looked up once."""
        if self._dead_letter_url is None:
            answer = await self._guarded("get_queue_attributes", QueueUrl=self.url,
                                         AttributeNames=["RedrivePolicy"])
            policy = answer.get("Attributes", {}).get("RedrivePolicy")
            if not policy:
                return None
            arn = str(json.loads(policy)["deadLetterTargetArn"])
            *_, account, name = arn.split(":")
            answer = await self._guarded("get_queue_url", QueueName=name,
                                         QueueOwnerAWSAccountId=account)
            self._dead_letter_url = str(answer["QueueUrl"])
        return self._dead_letter_url

    async def _guarded(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await self._call(operation, **params)
        except (BotoCoreError, ClientError) as exc:
            raise QueueError(f"SQS {operation}: {_reason(exc)}") from exc

    async def _call(self, operation: str, **params: Any) -> Any:
        return await asyncio.to_thread(lambda: getattr(self._sqs(), operation)(**params))

    def _sqs(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    # What the local worker uses, and Lambda does not.

    async def claim(self, limit: int) -> list[Job]:
        raise NotImplementedError(ON_LAMBDA)

    async def complete(self, job: Job) -> None:
        raise NotImplementedError(ON_LAMBDA)

    async def retry(self, job: Job, error: str, delay_s: float) -> None:
        raise NotImplementedError(ON_LAMBDA)

    async def fail(self, job: Job, error: str) -> None:
        raise NotImplementedError(ON_LAMBDA)

    async def release(self, job: Job) -> None:
        raise NotImplementedError(ON_LAMBDA)

    async def wait(self, timeout_s: float) -> None:
        raise NotImplementedError(ON_LAMBDA)


class SqsBatch:
    """How one worker invocation settles the jobs SQS delivered to it.

    A job done needs nothing: Lambda deletes every message not reported back. A job to retry
    is reported in :attr:`failures` and becomes visible again after its backoff. A job given
    up goes to the dead-letter queue (or, without one, is dropped with a log line), unless
    that fails, in which case it is reported, and SQS's redrive moves it there in the end.
    """

    def __init__(self, queue: SqsQueue) -> None:
        self.queue = queue
        self.failures: list[str] = []  # message ids to report in batchItemFailures

    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        return await self.queue.enqueue(kind, payload, dedup=dedup)

    async def complete(self, job: Job) -> None:
        """Nothing to do: Lambda deletes the messages that are not reported."""

    async def retry(self, job: Job, error: str, delay_s: float) -> None:
        self.failures.append(job.id)
        if isinstance(job, SqsJob):
            try:
                await self.queue.change_visibility(job, delay_s)
            except QueueError as exc:
                # Redelivered after the queue's own visibility timeout instead.
                log.warning("job %s: could not set its retry delay: %s", job.id, exc)

    async def fail(self, job: Job, error: str) -> None:
        if not isinstance(job, SqsJob):
            return
        try:
            kept = await self.queue.dead_letter(job, error)
        except QueueError as exc:
            log.warning("job %s: could not move it to the dead-letter queue (%s); it will be"
                        " delivered again", job.id, exc)
            await self.retry(job, error, 0)
            return
        if not kept:
            log.error("job %s failed and the queue has no dead-letter queue: dropped (%s)",
                      job.id, error)

    async def release(self, job: Job) -> None:
        """Give the job back at once (the invocation is running out of time)."""
        await self.retry(job, "released", 0)

    async def claim(self, limit: int) -> list[Job]:
        raise NotImplementedError(ON_LAMBDA)

    async def wait(self, timeout_s: float) -> None:
        raise NotImplementedError(ON_LAMBDA)


def job_from_record(record: dict[str, Any], keys: KeyRing) -> SqsJob:
    """The job in one record of an SQS event, its sealed fields opened with ``keys``. A body
    that is not a job, or does not open, comes out as a job of kind :data:`NOT_A_JOB`, which
    the worker refuses (and so dead-letters) like any unknown kind."""
    body = str(record.get("body", ""))
    message_id = str(record["messageId"])
    try:
        message = json.loads(body)
    except ValueError:
        message = None
    kind, payload = NOT_A_JOB, {}
    if (isinstance(message, dict) and isinstance(message.get("kind"), str)
            and isinstance(message.get("payload"), dict)):
        try:
            sealed = message.get("sealed")
            payload = open_payload(keys, {
                "kind": message["kind"], "payload": message["payload"],
                "sealed": base64.b64decode(sealed, validate=True) if sealed else None})
            kind = message["kind"]
        except (SealError, binascii.Error, ValueError) as exc:
            log.error("message %s: payload does not open: %s", message_id, exc)
    attempts = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    return SqsJob(id=message_id, kind=kind, payload=payload, attempts=attempts,
                  receipt=str(record.get("receiptHandle", "")), body=body)


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__
