"""The Postgres job queue: de-duplicated enqueue, SKIP LOCKED claims, retries, leases, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from functions.worker.runner import Worker
from shared import retention
from shared.db import Database, make_pool
from shared.queue.jobs import Job
from shared.queue.postgres import PgQueue
from shared.settings import Settings
from tests.conftest import fresh_database


@pytest.fixture(scope="module")
def queue_db_url(pg_url: str) -> str:
    # A database of its own: the bots' workers, running for other tests, take jobs too.
    return fresh_database(pg_url)


@pytest.fixture
async def db(queue_db_url: str) -> AsyncIterator[Database]:
    database = Database(make_pool(Settings.from_env({"DATABASE_URL": queue_db_url})))
    async with database.connection() as conn:
        await conn.execute("DELETE FROM jobs")
    yield database
    await database.close()


def kind() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_a_delivery_is_queued_once(db: Database) -> None:
    q = PgQueue(db)
    delivery = ("slack", f"Ev{uuid.uuid4().hex}")
    before = datetime.now(UTC)
    assert await q.enqueue("answer", {"n": 1}, dedup=delivery) is True
    assert await q.enqueue("answer", {"n": 2}, dedup=delivery) is False  # a redelivery
    jobs = await q.claim(10)
    after = datetime.now(UTC)
    assert [j.payload for j in jobs] == [{"n": 1}]
    # When it was queued (the worker stores nothing of it if its author is forgotten since).
    queued_at = jobs[0].queued_at
    assert queued_at is not None and before <= queued_at <= after


async def test_concurrent_redeliveries_queue_one_job(db: Database) -> None:
    q = PgQueue(db)
    delivery = ("telegram", str(uuid.uuid4().int))
    results = await asyncio.gather(*(q.enqueue("answer", {}, dedup=delivery) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert len(await q.claim(10)) == 1


async def test_two_workers_never_take_the_same_job(db: Database) -> None:
    q1, q2 = PgQueue(db), PgQueue(db)
    for i in range(20):
        await q1.enqueue("answer", {"i": i})
    a, b = await asyncio.gather(q1.claim(12), q2.claim(12))
    ids = [j.id for j in a + b]
    assert len(ids) == len(set(ids)) == 20


async def test_retry_waits_and_counts_attempts(db: Database) -> None:
    q = PgQueue(db)
    await q.enqueue("answer", {"x": 1})
    [job] = await q.claim(1)
    assert job.attempts == 1
    retried_from = await database_now(db)
    await q.retry(job, "model down", delay_s=0.5)
    again = await claim_when_due(q)
    assert again.id == job.id and again.attempts == 2
    # Due half a second after the retry, and taken only then (the database's clock says so,
    # however slowly this machine got there).
    due, taken_at = await job_times(db, job.id, q.lease_s)
    assert due >= retried_from + timedelta(seconds=0.5)
    assert taken_at >= due


async def test_failed_jobs_stay_visible_and_can_be_retried(db: Database) -> None:
    q = PgQueue(db)
    await q.enqueue("answer", {"x": 1})
    [job] = await q.claim(1)
    await q.fail(job, "platform: channel_not_found")
    failed = await q.failed()
    assert [(str(f["id"]), f["last_error"]) for f in failed] == [
        (job.id, "platform: channel_not_found")]
    assert await q.claim(1) == []
    assert await q.retry_failed(int(job.id)) is True
    [again] = await q.claim(1)
    assert again.id == job.id and again.attempts == 1


async def test_a_dead_workers_job_is_taken_again_at_once_not_when_its_lease_runs_out(
    db: Database
) -> None:
    """A killed worker's database session ends, and with it the lock its jobs were marked
    with: the next claim takes them, though their lease has an hour left."""
    dying, other = PgQueue(db, lease_s=3600), PgQueue(db, lease_s=3600)
    await dying.enqueue("answer", {"x": 1})
    [job] = await dying.claim(1)
    assert await other.claim(1) == []  # its worker is alive: the job stays its
    await dying.close()  # ...its process is killed: its connections close
    again = await claim_when_due(other)  # as soon as Postgres has ended that session
    assert again.id == job.id and again.attempts == 2
    await dying.complete(job)  # the dead run cannot end the new one
    assert await job_row(db, job.id) == ("running", 2)


async def test_the_same_lock_in_another_database_does_not_keep_a_dead_workers_job(
    db: Database, queue_db_url: str, pg_url: str
) -> None:
    """The lock is looked for in this database only: a lock under the same key held in
    another database of the server does not keep a dead worker's job."""
    q = PgQueue(db, lease_s=3600)
    await q.enqueue("answer", {"x": 1})
    [job] = await q.claim(1)
    elsewhere = Database(make_pool(Settings.from_env({"DATABASE_URL": pg_url})))
    try:
        async with elsewhere.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (q._key,))
            await q.close()
            again = await claim_when_due(PgQueue(db, lease_s=3600))
            await conn.execute("SELECT pg_advisory_unlock(%s)", (q._key,))
    finally:
        await elsewhere.close()
    assert again.id == job.id and again.attempts == 2


async def test_a_job_whose_worker_hangs_is_taken_again_after_its_lease(db: Database) -> None:
    q = PgQueue(db, lease_s=0.3)
    await q.enqueue("answer", {"x": 1})
    [job] = await q.claim(1)  # ...and the worker hangs here, its session alive
    _, first_taken_at = await job_times(db, job.id, q.lease_s)
    again = await claim_when_due(q)
    assert again.id == job.id and again.attempts == 2
    # Taken again only once the first lease had run out, by the database's clock.
    _, taken_again_at = await job_times(db, job.id, q.lease_s)
    assert taken_again_at >= first_taken_at + timedelta(seconds=q.lease_s)


async def test_a_hung_workers_job_is_taken_again_within_half_a_minute_by_default(
    db: Database
) -> None:
    """A hung worker's answer is late by the lease: 30 s by default, not 300 (a live worker
    renews every third of it, so a long answer keeps its job)."""
    default = Settings.from_env({}).job_lease_s
    for q in (PgQueue(db), PgQueue(db, lease_s=default)):  # as the worker builds it
        await q.enqueue("answer", {"x": 1})
        [job] = await q.claim(1)  # ...and the worker hangs here
        async with db.connection() as conn:
            cur = await conn.execute("SELECT extract(epoch FROM locked_until - now()) AS left"
                                     " FROM jobs WHERE id = %s", (int(job.id),))
            row = await cur.fetchone()
        assert row is not None and 20 <= float(row["left"]) <= 30


async def job_row(db: Database, job_id: str) -> tuple[str, int]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT state, attempts FROM jobs WHERE id = %s",
                                 (int(job_id),))
        row = await cur.fetchone()
    assert row is not None
    return str(row["state"]), int(row["attempts"])


async def database_now(db: Database) -> datetime:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT clock_timestamp() AS now")
        row = await cur.fetchone()
    assert row is not None
    return cast(datetime, row["now"])


async def job_times(db: Database, job_id: str, lease_s: float) -> tuple[datetime, datetime]:
    """When the job was due, and when it was last taken (its lease's end less ``lease_s``)."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT run_at, locked_until FROM jobs WHERE id = %s",
                                 (int(job_id),))
        row = await cur.fetchone()
    assert row is not None
    return (cast(datetime, row["run_at"]),
            cast(datetime, row["locked_until"]) - timedelta(seconds=lease_s))


async def claim_when_due(q: PgQueue) -> Job:
    """The one job ``q`` takes once one is due: claims tried in a loop, however long the
    database's clock takes to get there on this machine."""
    async with asyncio.timeout(30):
        while True:
            if jobs := await q.claim(1):
                [job] = jobs
                return job
            await asyncio.sleep(0.02)


async def test_a_run_that_lost_its_lease_cannot_end_the_run_that_took_over(
    db: Database
) -> None:
    q = PgQueue(db, lease_s=0.3)
    await q.enqueue("answer", {"x": 1})
    [stale] = await q.claim(1)
    live = await claim_when_due(q)  # the lease ran out: another run took the job
    assert live.attempts == 2
    await q.complete(stale)
    await q.retry(stale, "late", 0)
    await q.fail(stale, "late")
    assert await job_row(db, live.id) == ("running", 2)
    await q.complete(live)
    assert await job_row(db, live.id) == ("done", 2)


async def test_a_renewed_lease_keeps_the_job_taken(db: Database) -> None:
    q = PgQueue(db, lease_s=0.3)
    await q.enqueue("answer", {"x": 1})
    [job] = await q.claim(1)
    _, taken_at = await job_times(db, job.id, q.lease_s)
    # Renewed (by a worker whose leases last a minute) until the first lease has run out by
    # the database's clock: the job is still taken then.
    renewing = PgQueue(db, lease_s=60)
    async with asyncio.timeout(30):
        while await database_now(db) <= taken_at + timedelta(seconds=q.lease_s):
            await renewing.renew([job])
            await asyncio.sleep(0.05)
    assert await q.claim(1) == []


async def test_the_worker_renews_the_leases_of_the_jobs_it_runs(db: Database) -> None:
    """An answer that takes longer than the lease is not taken by a second worker."""
    q, other = PgQueue(db, lease_s=1.0), PgQueue(db, lease_s=1.0)
    await q.enqueue("answer", {"x": 1})
    taken_twice: list[Job] = []
    finished = asyncio.Event()

    async def slow(job: Job, last: bool) -> None:
        # Runs until half a lease past its first one, by the database's clock. Each time the
        # lease is seen renewed (or run out), a second worker tries to take the job.
        _, taken_at = await job_times(db, job.id, q.lease_s)
        held = taken_at + timedelta(seconds=q.lease_s)
        while not taken_twice and await database_now(db) <= taken_at + timedelta(
                seconds=1.5 * q.lease_s):
            await asyncio.sleep(0.05)
            _, renewed_from = await job_times(db, job.id, q.lease_s)
            now = await database_now(db)
            until = renewed_from + timedelta(seconds=q.lease_s)
            if until != held or now > until:
                held = until
                taken_twice.extend(await other.claim(1))
        finished.set()

    stop = asyncio.Event()
    running = asyncio.create_task(Worker(q, slow, poll_s=0.05).run(stop))
    await asyncio.wait_for(finished.wait(), timeout=60)
    stop.set()
    await running
    await q.close()  # the worker listened for new jobs on a connection of its own
    assert taken_twice == []
    async with db.connection() as conn:
        cur = await conn.execute("SELECT state, attempts FROM jobs")
        assert [(r["state"], r["attempts"]) for r in await cur.fetchall()] == [("done", 1)]


async def test_release_puts_a_job_back_without_counting_it(db: Database) -> None:
    q = PgQueue(db)
    await q.enqueue("answer", {"x": 1})
    [job] = await q.claim(1)
    await q.release(job)
    [again] = await q.claim(1)
    assert again.attempts == 1


async def test_wait_wakes_on_a_new_job(db: Database) -> None:
    q = PgQueue(db)
    await q.wait(0.05)  # connect the listener
    waiter = asyncio.create_task(q.wait(3600))  # only a NOTIFY can end this wait in time
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await PgQueue(db).enqueue("answer", {"x": 1})
    await asyncio.wait_for(waiter, 30)
    await q.close()


async def test_purge_removes_only_old_finished_work(db: Database) -> None:
    q = PgQueue(db)
    await q.enqueue("answer", {"old": True}, dedup=("slack", f"old-{uuid.uuid4().hex}"))
    await q.enqueue("answer", {"new": True})
    jobs = await q.claim(2)
    for job in jobs:
        await q.complete(job)
    async with db.connection() as conn:
        await conn.execute("UPDATE jobs SET finished_at = now() - interval '10 days'"
                           " WHERE payload ? 'old'")
        await conn.execute("UPDATE inbound_deliveries SET received_at = now() -"
                           " interval '10 days' WHERE delivery_id LIKE 'old-%%'")
    done = await retention.purge(db, retention.Policy(conversation_days=90, audit_days=30,
                                                      job_days=7))
    assert (done["finished jobs"], done["remembered deliveries"]) == (1, 1)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT payload FROM jobs")
        assert [r["payload"] for r in await cur.fetchall()] == [{"new": True}]


async def test_concurrent_deliveries_share_writes_and_each_gets_its_answer(db: Database) -> None:
    q = PgQueue(db)
    keys = [("slack", f"Ev{uuid.uuid4().hex}") for _ in range(60)]
    calls = [*keys, *keys[:20]]  # 20 of them delivered twice, at the same moment
    results = await asyncio.gather(*(q.enqueue("answer", {"k": k[1]}, dedup=k) for k in calls))
    assert sum(results) == 60
    assert all(results[:40])  # the ones delivered once were all new
    for k in keys[:20]:  # of each pair, exactly one was new
        assert [r for c, r in zip(calls, results, strict=True) if c == k].count(True) == 1
    jobs = await q.claim(200)
    assert sorted(j.payload["k"] for j in jobs) == sorted(k[1] for k in keys)


async def test_a_database_outage_fails_every_waiting_delivery(pg_url: str) -> None:
    from shared.errors import StorageError

    # A database that does not exist: every write fails, and each caller hears so.
    gone = pg_url.replace("/charla?", "/no_such_database?", 1)
    database = Database(make_pool(Settings.from_env({"DATABASE_URL": gone,
                                                     "CHARLA_DB_TIMEOUT": "1"})))
    q = PgQueue(database)
    results = await asyncio.gather(
        *(q.enqueue("answer", {}, dedup=("slack", f"Ev{i}")) for i in range(5)),
        return_exceptions=True)
    assert all(isinstance(r, StorageError) for r in results), results
    await database.close()
