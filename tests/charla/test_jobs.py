"""``charla jobs failed`` and ``charla jobs retry``: what an operator sees and does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.db import Database, make_pool
from shared.queue.postgres import PgQueue
from shared.settings import Settings
from tests.charla.test_cli import charla
from tests.conftest import fresh_database


async def _a_failed_job(url: str) -> str:
    db = Database(make_pool(Settings.from_env({"DATABASE_URL": url})))
    queue = PgQueue(db)
    await queue.enqueue("answer", {"platform": "slack"}, dedup=("slack", "EvFAILED1"))
    [job] = await queue.claim(1)
    await queue.fail(job, "platform: Slack chat.postMessage: channel_not_found")
    await db.close()
    return job.id


def test_failed_jobs_are_listed_and_can_be_retried(pg_url: str) -> None:
    url = fresh_database(pg_url)
    job_id = asyncio.run(_a_failed_job(url))
    listed = charla("jobs", "failed", env={"DATABASE_URL": url})
    assert listed.returncode == 0, listed.stderr
    assert job_id in listed.stdout and "channel_not_found" in listed.stdout
    again = charla("jobs", "retry", job_id, env={"DATABASE_URL": url})
    assert again.returncode == 0 and "queued again" in again.stdout
    assert charla("jobs", "failed", env={"DATABASE_URL": url}).stdout.strip() == "no failed jobs"
    twice = charla("jobs", "retry", job_id, env={"DATABASE_URL": url})
    assert twice.returncode == 1 and "no failed job" in twice.stdout


def test_without_a_database_it_says_what_to_do(tmp_path: Path) -> None:
    done = charla("jobs", "failed", env={"DATABASE_URL": "", "CHARLA_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert "charla up" in done.stderr and "Traceback" not in done.stderr
