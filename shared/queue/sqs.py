"""The job queue on AWS: SQS between the webhook functions and the worker function.

Webhooks enqueue through :class:`SqsQueue`, a :class:`~shared.queue.contract.JobQueue`: one
SendMessage per delivery, or one SendMessageBatch for the deliveries that arrive while a send
is in flight. A send that fails raises :class:`QueueError`, so the webhook answers 503 and the
platform delivers again: nothing accepted is lost. A message carries its job's readable
fields, its delivery id and, sealed with the data keys, the rest (what people wrote, where the
answer goes), as the Postgres queue stores them (shared/queue/jobs.py).

De-duplication happens in the worker, not in the webhook: a webhook function on SQS opens no
database connection on its way (psycopg's import and a connection are a third of a 300 ms cold
start, docs/benchmarks.md), so a platform's second delivery of one event is queued too. Each
send names itself in the message body (``delivery``: platform, delivery id and a random send
id), so the name stays with the body: the same on SQS's retries, in the dead-letter queue and
after a redrive from it, and another for a platform's second delivery. Before running a batch
the worker records its deliveries (:meth:`SqsQueue.first_deliveries`, through the one
de-duplicating statement, shared/queue/dedup.py) and drops the copies.

Nobody takes jobs from SqsQueue: Lambda's event source mapping hands the worker function
batches of messages. :class:`SqsBatch` is how one invocation settles its jobs, a
:class:`~shared.queue.contract.Settles`: a job to retry is reported back
(``batchItemFailures``) with its visibility set to the backoff, so SQS redelivers it then and,
after the queue's ``maxReceiveCount`` receives, moves it to the dead-letter queue
(shared/queue/dead_letters.py); a job given up goes to the dead-letter queue at once, with its
error.

AWS is called through shared/aws.py (signed JSON requests), not botocore: see there why.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared import aws
from shared.crypto import KeyRing
from shared.errors import ConfigError, SealError, StorageError
from shared.queue.dead_letters import DeadLetterError, DeadLetters
from shared.queue.dedup import Deliveries, Delivery, OnAccept
from shared.queue.jobs import Job, open_payload, seal_payload

if TYPE_CHECKING:
    from shared.db import Database

log = logging.getLogger(__name__)

MAX_BATCH = 10  # SendMessageBatch's limit
MAX_BATCH_BYTES = 240_000  # under SQS's 256 KiB for a whole batch
MAX_VISIBILITY_S = 43_200  # 12 hours
NOT_A_JOB = "(not a job)"


class QueueError(StorageError):
    """SQS could not be reached or refused a message."""


@dataclass(frozen=True)
class SqsJob(Job):
    """A job delivered by SQS: ``id`` is the message id, ``attempts`` its receive count,
    ``delivery`` the platform's (platform, delivery id) when the job answers one, ``sent_as``
    the id of the send that queued it (see the module's notes)."""

    receipt: str = ""
    body: str = ""
    delivery: tuple[str, str] | None = None
    sent_as: str = ""


class SqsQueue:
    """Sends jobs to one SQS queue; on the worker's side, settles them and drops the copies.

    ``keys`` seal what people wrote; ``db`` is the worker's, to record deliveries (a webhook
    needs none), and ``on_accept`` what is written with each one accepted (Slack's thread
    marks: the composition layer passes the platforms'). ``client`` makes the SQS client
    (shared/aws.py's, by default).
    """

    def __init__(self, queue_url: str | None, keys: KeyRing, *, db: Database | None = None,
                 on_accept: Sequence[OnAccept] = (),
                 client: Callable[[], Any] | None = None) -> None:
        if not queue_url:
            raise ConfigError("CHARLA_QUEUE=sqs needs CHARLA_SQS_QUEUE_URL")
        self.url = queue_url
        self.keys = keys
        self._deliveries = Deliveries(db, on_accept, sends=True) if db is not None else None
        self._make_client = client or (lambda: aws.Client(aws.SQS, connect_timeout=1.0,
                                                          read_timeout=2.0, attempts=2))
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._dead_letters: DeadLetters | None = None
        self._waiting: list[tuple[str, asyncio.Future[bool]]] = []
        self._drainer: asyncio.Task[None] | None = None

    def dead_letters(self) -> DeadLetters:
        """The queue's dead-letter queue, to list failed jobs and move them back (the admin
        view); through this queue's client."""
        if self._dead_letters is None:
            self._dead_letters = DeadLetters(self._sqs(), self.url)
        return self._dead_letters

    async def close(self) -> None:
        """Close the client's kept connections (the container ends)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # The webhooks' side.

    async def enqueue(self, kind: str, payload: dict[str, Any], *,
                      dedup: tuple[str, str] | None = None) -> bool:
        """Send the job; True once SQS holds it. A delivery seen before is sent again all the
        same: the worker drops the copy (see the module's notes)."""
        # What people wrote, and where the answer goes, travel and rest sealed, as in the
        # Postgres queue (shared/queue/postgres.py); the rest stays readable for operators.
        readable, sealed = seal_payload(self.keys, kind, payload)
        message: dict[str, Any] = {"kind": kind, "payload": readable}
        if sealed is not None:
            message["sealed"] = base64.b64encode(sealed).decode()
        if dedup is not None:
            message["delivery"] = [*dedup, uuid.uuid4().hex]
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._take()
            errors: list[str | Exception | None]
            try:
                errors = list(await self._send([body for body, _ in batch]))
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                errors = [exc] * len(batch)
            for (_, future), error in zip(batch, errors, strict=True):
                if future.done():
                    continue
                if isinstance(error, Exception):
                    future.set_exception(error)
                elif error is not None:
                    future.set_exception(QueueError(f"job not queued: {error}"))
                else:
                    future.set_result(True)

    def _take(self) -> list[tuple[str, asyncio.Future[bool]]]:
        """The next waiting messages that fit in one SendMessageBatch."""
        size, n = 0, 0
        for body, _ in self._waiting[:MAX_BATCH]:
            size += len(body.encode())
            if n and size > MAX_BATCH_BYTES:
                break
            n += 1
        batch, self._waiting = self._waiting[:n], self._waiting[n:]
        return batch

    async def _send(self, bodies: list[str]) -> list[str | None]:
        """Send each body; per body, None or why it was not sent."""
        try:
            if len(bodies) == 1:
                await self._call("SendMessage", QueueUrl=self.url, MessageBody=bodies[0])
                return [None]
            answer = await self._call(
                "SendMessageBatch", QueueUrl=self.url,
                Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
        except aws.AwsError as exc:
            log.warning("SQS refused %d messages: %s", len(bodies), exc.code)
            return [exc.code] * len(bodies)
        errors: list[str | None] = [None] * len(bodies)
        for failed in answer.get("Failed", []):
            errors[int(failed["Id"])] = str(failed.get("Code", "failed"))
        if any(errors):
            log.warning("SQS refused %d of %d messages", sum(map(bool, errors)), len(bodies))
        return errors

    # The worker's side (one Lambda invocation settles its batch through SqsBatch).

    async def change_visibility(self, job: SqsJob, delay_s: float) -> None:
        seconds = min(MAX_VISIBILITY_S, max(0, math.ceil(delay_s)))
        await self._guarded("ChangeMessageVisibility", QueueUrl=self.url,
                            ReceiptHandle=job.receipt, VisibilityTimeout=seconds)

    async def dead_letter(self, job: SqsJob, error: str) -> bool:
        """Put ``job`` on the dead-letter queue with its error; False if there is none."""
        url = await self._dead_letter_queue()
        if url is None:
            return False
        await self._guarded(
            "SendMessage", QueueUrl=url, MessageBody=job.body,
            MessageAttributes={
                "error": {"DataType": "String", "StringValue": error[:1000] or "failed"},
                "attempts": {"DataType": "Number", "StringValue": str(job.attempts)},
                "message_id": {"DataType": "String", "StringValue": job.id}})
        return True

    async def _dead_letter_queue(self) -> str | None:
        """The dead-letter queue named by the queue's redrive policy, looked up once."""
        try:
            return await asyncio.to_thread(self.dead_letters().lookup)
        except DeadLetterError as exc:
            raise QueueError(str(exc)) from None

    async def _guarded(self, action: str, **params: Any) -> Any:
        try:
            return await self._call(action, **params)
        except aws.AwsError as exc:
            raise QueueError(f"SQS {action}: {exc.code}") from None

    async def _call(self, action: str, **params: Any) -> Any:
        return await asyncio.to_thread(lambda: self._sqs().call(action, **params))

    def _sqs(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    async def first_deliveries(self, jobs: list[SqsJob]) -> list[SqsJob]:
        """The jobs to run: all but the copies of a delivery another send carries.

        Each delivery is recorded with the send that carries it, in one statement for the
        batch (shared/queue/dedup.py), with what ``on_accept`` writes (a Slack thread is marked
        before its question is answered, as the local queue marks it when it accepts it). A
        message that comes back (a retry, a redrive from the dead-letter queue) runs again; a
        copy is dropped, with a log line. :class:`StorageError` if the database cannot say:
        the batch is then delivered again.
        """
        keyed = [job for job in jobs if job.delivery is not None]
        if not keyed:
            return jobs
        if self._deliveries is None:
            raise ConfigError("de-duplicating deliveries needs DATABASE_URL")
        accepted = iter(await self._deliveries.accept([_delivery(job) for job in keyed]))
        run: list[SqsJob] = []
        for job in jobs:  # keyed's order: one answer each
            if job.delivery is None or next(accepted):
                run.append(job)
            else:
                log.info("%s delivery %s came again; already accepted (message %s)",
                         job.delivery[0], job.delivery[1], job.id)
        return run


def _delivery(job: SqsJob) -> Delivery:
    assert job.delivery is not None
    return Delivery(*job.delivery, job.kind, job.payload, sent_as=job.sent_as)


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
    delivery = message.get("delivery") if isinstance(message, dict) else None
    key, sent_as = None, ""
    if isinstance(delivery, list) and len(delivery) == 3 and kind != NOT_A_JOB:
        key, sent_as = (str(delivery[0]), str(delivery[1])), str(delivery[2])
    attributes = record.get("attributes", {})
    attempts = int(attributes.get("ApproximateReceiveCount", "1"))
    sent = attributes.get("SentTimestamp")  # milliseconds since the epoch
    queued_at = (datetime.fromtimestamp(int(sent) / 1000, UTC)
                 if isinstance(sent, str) and sent.isdigit() else None)
    return SqsJob(id=message_id, kind=kind, payload=payload, attempts=attempts,
                  queued_at=queued_at, receipt=str(record.get("receiptHandle", "")),
                  body=body, delivery=key, sent_as=sent_as)

