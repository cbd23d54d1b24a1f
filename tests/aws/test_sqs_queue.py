"""The queue's enqueue contract, on Postgres and on SQS; what only SQS does.

The Postgres queue drops a delivery's copies as it queues; SQS queues them, and the worker's
side (:meth:`SqsQueue.first_deliveries`) drops them before running a batch; both through the
one statement in shared/queue/dedup.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from functions.slack import threads
from shared import aws as aws_api
from shared.crypto import KeyRing
from shared.db import Database, make_pool
from shared.errors import StorageError
from shared.queue.contract import JobQueue, Settles
from shared.queue.postgres import PgQueue
from shared.queue.sqs import NOT_A_JOB, QueueError, SqsBatch, SqsJob, SqsQueue, job_from_record
from shared.settings import Settings
from tests.aws.conftest import Aws, Queues
from tests.conftest import DATA_KEYS, free_port


@pytest.fixture
async def db(aws_db_url: str) -> AsyncIterator[Database]:
    database = Database(make_pool(Settings.from_env({"DATABASE_URL": aws_db_url,
                                                     "CHARLA_DATA_KEYS": DATA_KEYS})))
    yield database
    await database.close()


@dataclass
class Subject:
    queue: JobQueue
    queued: Callable[[], int]  # jobs waiting now


@pytest.fixture(params=["postgres", "sqs"])
def subject(request: pytest.FixtureRequest, db: Database, aws_db_url: str, aws: Aws,
            queues: Queues) -> Subject:
    if request.param == "sqs":
        return Subject(SqsQueue(queues.url, db.keys), lambda: queues.count(aws))
    return pg_subject(db, aws_db_url)


def pg_subject(db: Database, aws_db_url: str) -> Subject:
    kind = f"test-{uuid.uuid4().hex[:8]}"
    pg = PgQueue(db)

    class Tagged:  # every job of this test under its own kind, to count them apart
        async def enqueue(self, _kind: str, payload: dict[str, object], *,
                          dedup: tuple[str, str] | None = None) -> bool:
            return await pg.enqueue(kind, payload, dedup=dedup)

    def queued() -> int:
        import psycopg

        with psycopg.connect(aws_db_url) as conn:
            row = conn.execute("SELECT count(*) FROM jobs WHERE kind = %s", (kind,)).fetchone()
        return int(row[0]) if row else 0

    return Subject(Tagged(), queued)  # only enqueue: all a webhook needs


def delivery() -> tuple[str, str]:
    return ("slack", f"Ev{uuid.uuid4().hex[:12].upper()}")


async def test_postgres_queues_a_delivery_once(db: Database, aws_db_url: str) -> None:
    pg = pg_subject(db, aws_db_url)
    key = delivery()
    assert await pg.queue.enqueue("answer", {"n": 1}, dedup=key) is True
    assert await pg.queue.enqueue("answer", {"n": 2}, dedup=key) is False
    assert pg.queued() == 1


async def test_postgres_queues_one_job_for_concurrent_redeliveries(db: Database,
                                                                   aws_db_url: str) -> None:
    pg = pg_subject(db, aws_db_url)
    key = delivery()
    results = await asyncio.gather(*(pg.queue.enqueue("answer", {}, dedup=key)
                                     for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert pg.queued() == 1


def received_jobs(aws: Aws, queues: Queues, keys: KeyRing) -> list[SqsJob]:
    return [job_from_record(record(m), keys) for m in queues.receive(aws)]


async def test_on_sqs_a_delivery_sent_twice_runs_once(db: Database, aws: Aws,
                                                      queues: Queues) -> None:
    sender = SqsQueue(queues.url, db.keys)  # a webhook's: no database
    key = delivery()
    assert await sender.enqueue("answer", {"n": 1}, dedup=key) is True
    assert await sender.enqueue("answer", {"n": 2}, dedup=key) is True
    first, copy = sorted(received_jobs(aws, queues, db.keys), key=lambda j: j.payload["n"])
    assert first.delivery == copy.delivery == key
    worker = SqsQueue(queues.url, db.keys, db=db)
    # In one batch: the first message carries the delivery, the copy is dropped.
    assert await worker.first_deliveries([first, copy]) == [first]
    # The same message back for a retry runs again; the copy in a batch of its own does not.
    assert await worker.first_deliveries([first]) == [first]
    assert await worker.first_deliveries([copy]) == []


async def test_on_sqs_a_slack_thread_is_known_once_the_worker_records_its_question(
    db: Database, aws: Aws, queues: Queues
) -> None:
    thread = f"T1:C{uuid.uuid4().hex[:8]}:1718000100.000200"
    key = delivery()
    sender = SqsQueue(queues.url, db.keys)  # a webhook's: no database, so no mark yet
    await sender.enqueue("answer", {"platform": "slack", "delivery_id": key[1],
                                    "conversation": thread, "text": "hi"}, dedup=key)
    await sender.enqueue("answer", {"platform": "slack", "delivery_id": key[1],
                                    "conversation": thread, "text": "hi"}, dedup=key)
    jobs = received_jobs(aws, queues, db.keys)
    assert not await threads.known(db, thread)
    # Before the question is answered: a reply in the thread meanwhile is answered too.
    worker = SqsQueue(queues.url, db.keys, db=db, on_accept=(threads.MARK_THREAD,))
    assert len(await worker.first_deliveries(jobs)) == 1
    assert await threads.known(db, thread)


async def test_on_sqs_copies_in_concurrent_batches_run_once(db: Database, aws: Aws,
                                                            queues: Queues) -> None:
    sender = SqsQueue(queues.url, db.keys)
    key, other = delivery(), delivery()
    await asyncio.gather(*(sender.enqueue("answer", {"i": i}, dedup=key) for i in range(8)))
    await sender.enqueue("answer", {"i": 8}, dedup=other)
    await sender.enqueue("answer", {"i": 9})  # no delivery: always runs
    jobs = received_jobs(aws, queues, db.keys)
    assert len(jobs) == 10
    worker = SqsQueue(queues.url, db.keys, db=db)
    # Each job in a batch of its own, all at once, as concurrent invocations would.
    ran = await asyncio.gather(*(worker.first_deliveries([job]) for job in jobs))
    runs = [job for batch in ran for job in batch]
    assert len([job for job in runs if job.delivery == key]) == 1  # one of the eight copies
    assert sorted(job.payload["i"] for job in runs if job.delivery != key) == [8, 9]


async def test_many_deliveries_at_once_are_each_queued(subject: Subject) -> None:
    keys = [delivery() for _ in range(25)]
    results = await asyncio.gather(*(subject.queue.enqueue("answer", {"i": i}, dedup=key)
                                     for i, key in enumerate(keys)))
    assert results == [True] * 25
    assert subject.queued() == 25


async def test_a_job_without_a_delivery_is_always_queued(subject: Subject) -> None:
    assert await subject.queue.enqueue("answer", {}) is True
    assert await subject.queue.enqueue("answer", {}) is True
    assert subject.queued() == 2


async def test_on_sqs_a_batch_whose_deliveries_cannot_be_checked_is_an_error(
    aws: Aws, queues: Queues
) -> None:
    away = Database(make_pool(Settings.from_env({
        "DATABASE_URL": f"postgresql://charla@127.0.0.1:{free_port()}/charla",
        "CHARLA_DATA_KEYS": DATA_KEYS, "CHARLA_DB_TIMEOUT": "1"})))
    try:
        sender = SqsQueue(queues.url, away.keys)
        await sender.enqueue("answer", {"n": 1}, dedup=delivery())
        jobs = received_jobs(aws, queues, away.keys)
        with pytest.raises(StorageError):  # the worker hands the whole batch back
            await SqsQueue(queues.url, away.keys, db=away).first_deliveries(jobs)
        # A batch without deliveries needs no database.
        assert await SqsQueue(queues.url, away.keys, db=away).first_deliveries([]) == []
    finally:
        await away.close()


async def test_deliveries_that_arrive_together_share_sends(db: Database, aws: Aws,
                                                           queues: Queues) -> None:
    calls: list[str] = []

    class Counted(aws_api.Client):
        def call(self, action: str, **params: object) -> dict[str, object]:
            calls.append(action)
            return super().call(action, **params)

    queue = SqsQueue(queues.url, db.keys, client=lambda: Counted(aws_api.SQS))
    results = await asyncio.gather(*(queue.enqueue("answer", {"i": i}, dedup=delivery())
                                     for i in range(25)))
    assert results == [True] * 25
    assert queues.count(aws) == 25
    assert "SendMessageBatch" in calls
    assert len(calls) <= 10  # one send for the first, then batches of up to 10


def record(message: dict[str, object]) -> dict[str, object]:
    """The event source mapping's record for a message from ReceiveMessage."""
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": message["Attributes"]}


async def test_what_people_wrote_travels_sealed_and_comes_out_whole(
    db: Database, aws: Aws, queues: Queues
) -> None:
    payload = {"platform": "slack", "delivery_id": "Ev1", "user": "U1",
               "text": "¿Qué tal? 🙂 " + "x" * 5000, "n": [1, 2.5, None],
               "reply_to": {"channel": "C0PRIVATE7", "ts": "1.2"}}
    await SqsQueue(queues.url, db.keys).enqueue("answer", payload, dedup=delivery())
    [message] = queues.receive(aws)
    body = json.loads(message["Body"])
    assert body["kind"] == "answer" and body["payload"]["delivery_id"] == "Ev1"
    assert "¿Qué tal?" not in message["Body"] and "C0PRIVATE7" not in message["Body"]
    job = job_from_record(record(message), db.keys)
    assert (job.kind, job.payload, job.attempts) == ("answer", payload, 1)
    assert job.queued_at is not None  # SQS's SentTimestamp
    assert abs((datetime.now(UTC) - job.queued_at).total_seconds()) < 60
    # Another ring (a lost key, a body from elsewhere): the job cannot run, and says why.
    other = KeyRing({"test1": bytes(32)}, "test1")
    assert job_from_record(record(message), other).kind == NOT_A_JOB


async def test_a_failed_send_is_an_error_for_every_delivery_waiting(
    db: Database, aws: Aws, queues: Queues
) -> None:
    aws.client("sqs").delete_queue(QueueUrl=queues.url)
    queue = SqsQueue(queues.url, db.keys)
    results = await asyncio.gather(*(queue.enqueue("answer", {}, dedup=delivery())
                                     for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, QueueError) and "QueueDoesNotExist" in str(r) for r in results)


async def test_a_batch_reports_retries_and_dead_letters(db: Database, aws: Aws,
                                                        queues: Queues) -> None:
    queue = SqsQueue(queues.url, db.keys, db=db)
    for i in range(2):
        await queue.enqueue("answer", {"i": i})
    first, second = (job_from_record(record(m), db.keys) for m in queues.receive(aws))
    batch = SqsBatch(queue)
    await batch.retry(first, "platform: 500", 0.2)
    await batch.fail(second, "platform: channel_not_found")
    await batch.complete(first)
    assert batch.failures == [first.id]
    [dead] = queues.receive(aws, dead=True)
    assert dead["Body"] == second.body
    assert dead["MessageAttributes"]["message_id"]["StringValue"] == second.id
    # The retried one is visible again once its delay (rounded up to a second) has passed.
    [back] = queues.receive(aws, wait_s=5)
    assert back["MessageId"] == first.id


def test_records_that_are_not_jobs_become_jobs_nobody_runs() -> None:
    for body in ("", "not json", "[]", '{"kind": 1, "payload": {}}', '{"kind": "answer"}'):
        job = job_from_record({"messageId": "m1", "receiptHandle": "r", "body": body,
                               "attributes": {"ApproximateReceiveCount": "4"}}, KeyRing())
        assert (job.kind, job.payload, job.attempts, job.body) == (NOT_A_JOB, {}, 4, body)


def test_taking_jobs_from_sqs_is_lambdas_job(queues: Queues) -> None:
    queue = SqsQueue(queues.url, KeyRing())
    accepts: JobQueue = queue  # what a webhook needs (mypy checks the promises)
    settles: Settles = SqsBatch(queue)  # what an invocation settles its jobs on
    # Lambda's event source mapping hands the jobs out: neither takes jobs itself.
    for promised in (accepts, settles):
        assert not hasattr(promised, "claim") and not hasattr(promised, "wait")
