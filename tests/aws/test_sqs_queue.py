"""The queue's enqueue contract, on Postgres and on SQS; what only SQS does."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from shared.crypto import KeyRing
from shared.db import Database, make_pool
from shared.queue import Job, JobQueue, PgQueue
from shared.settings import Settings
from shared.sqs_queue import NOT_A_JOB, QueueError, SqsBatch, SqsQueue, job_from_record
from tests.aws.conftest import Aws, Queues, delivered
from tests.conftest import DATA_KEYS


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
        return Subject(SqsQueue(db, queues.url), lambda: queues.count(aws))
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

    return Subject(Tagged(), queued)  # type: ignore[arg-type]


def delivery() -> tuple[str, str]:
    return ("slack", f"Ev{uuid.uuid4().hex[:12].upper()}")


async def test_a_delivery_is_queued_once(subject: Subject) -> None:
    key = delivery()
    assert await subject.queue.enqueue("answer", {"n": 1}, dedup=key) is True
    assert await subject.queue.enqueue("answer", {"n": 2}, dedup=key) is False
    assert subject.queued() == 1


async def test_concurrent_redeliveries_queue_one_job(subject: Subject) -> None:
    key = delivery()
    results = await asyncio.gather(*(subject.queue.enqueue("answer", {}, dedup=key)
                                     for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert subject.queued() == 1


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


async def test_deliveries_that_arrive_together_share_sends(db: Database, aws: Aws,
                                                           queues: Queues) -> None:
    calls: list[str] = []

    class Counted:
        def __init__(self) -> None:
            self.real = aws.client("sqs")

        def __getattr__(self, name: str) -> object:
            calls.append(name)
            return getattr(self.real, name)

    queue = SqsQueue(db, queues.url, client=Counted)
    results = await asyncio.gather(*(queue.enqueue("answer", {"i": i}, dedup=delivery())
                                     for i in range(25)))
    assert results == [True] * 25
    assert queues.count(aws) == 25
    assert "send_message_batch" in calls
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
    await SqsQueue(db, queues.url).enqueue("answer", payload, dedup=delivery())
    [message] = queues.receive(aws)
    body = json.loads(message["Body"])
    assert body["kind"] == "answer" and body["payload"]["delivery_id"] == "Ev1"
    assert "¿Qué tal?" not in message["Body"] and "C0PRIVATE7" not in message["Body"]
    job = job_from_record(record(message), db.keys)
    assert (job.kind, job.payload, job.attempts) == ("answer", payload, 1)
    # Another ring (a lost key, a body from elsewhere): the job cannot run, and says why.
    other = KeyRing({"test1": bytes(32)}, "test1")
    assert job_from_record(record(message), other).kind == NOT_A_JOB


async def test_a_failed_send_releases_the_delivery(db: Database, aws: Aws, queues: Queues,
                                                   aws_db_url: str) -> None:
    aws.client("sqs").delete_queue(QueueUrl=queues.url)
    keys = [delivery() for _ in range(3)]
    queue = SqsQueue(db, queues.url)
    results = await asyncio.gather(*(queue.enqueue("answer", {}, dedup=key) for key in keys),
                                   return_exceptions=True)
    assert all(isinstance(r, QueueError) for r in results)
    assert not any(delivered(aws_db_url, *key) for key in keys)


async def test_a_batch_reports_retries_and_dead_letters(db: Database, aws: Aws,
                                                        queues: Queues) -> None:
    queue = SqsQueue(db, queues.url)
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


async def test_taking_jobs_from_sqs_is_lambdas_job(db: Database, queues: Queues) -> None:
    queue = SqsQueue(db, queues.url)
    job = Job("1", "answer", {}, 1)
    with pytest.raises(NotImplementedError, match="event source mapping"):
        await queue.claim(1)
    with pytest.raises(NotImplementedError):
        await queue.retry(job, "x", 1)
    with pytest.raises(NotImplementedError):
        await SqsBatch(queue).wait(1)
