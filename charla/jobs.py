"""``charla jobs``: the failed jobs the worker gave up on, and putting one back in the queue.

Locally (and wherever the Postgres queue runs) they are rows of the ``jobs`` table; with
``--sqs`` they are the messages in the dead-letter queue of a deployment on AWS
(shared/queue/dead_letters.py, through boto3: charla/dead_letters.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import Any

from charla.home import with_database
from shared.errors import ConfigError
from shared.queue.postgres import PgQueue


def _with_queue(work: Callable[[PgQueue], Awaitable[int]]) -> int:
    return with_database(lambda db: work(PgQueue(db)))


def _sqs_url(args: argparse.Namespace) -> str | None:
    """The SQS queue ``--sqs`` names (or CHARLA_SQS_QUEUE_URL), None without ``--sqs``."""
    if args.sqs is None:
        return None
    url = args.sqs or os.environ.get("CHARLA_SQS_QUEUE_URL", "")
    if not url:
        raise ConfigError("--sqs needs the queue's URL (or CHARLA_SQS_QUEUE_URL)")
    return str(url)


def failed(args: argparse.Namespace) -> int:
    url = _sqs_url(args)
    if url is not None:
        from charla.dead_letters import dead_letters

        dead = dead_letters(url).peek(args.limit)
        if not dead:
            print("no failed jobs")
        for job in dead:
            when = f"{job.sent_at:%Y-%m-%d %H:%M:%S}" if job.sent_at else "-"
            print(f"{job.message_id}\t{job.kind}\t{job.delivery}\t{job.attempts} attempt(s)\t"
                  f"{when}\t{job.error}")
        return 0

    async def work(queue: PgQueue) -> int:
        rows = await queue.failed(limit=args.limit)
        if not rows:
            print("no failed jobs")
        for row in rows:
            print(f"{row['id']}\t{row['kind']}\t{row['attempts']} attempt(s)\t"
                  f"{row['finished_at']:%Y-%m-%d %H:%M:%S}\t{row['last_error']}")
        return 0

    return _with_queue(work)


def retry(args: argparse.Namespace) -> int:
    url = _sqs_url(args)
    if url is not None:
        from charla.dead_letters import dead_letters

        if (args.id is None) == (not args.all):
            raise ConfigError("name one job (its message id) or --all")
        moved = dead_letters(url).move_back(None if args.all else args.id)
        if args.id is not None and not moved:
            print(f"charla: no failed job {args.id} in the dead-letter queue")
            return 1
        print(f"{moved} job(s) queued again")
        return 0
    if args.all or args.id is None or not args.id.isdigit():
        raise ConfigError("name one failed job by its number (--all is for --sqs)")
    job_id = int(args.id)

    async def work(queue: PgQueue) -> int:
        if await queue.retry_failed(job_id):
            print(f"job {job_id} queued again")
            return 0
        print(f"charla: no failed job {job_id}")
        return 1

    return _with_queue(work)


def add_commands(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="failed jobs: list them, retry one").add_subparsers(
        dest="action", required=True)
    sqs_help = ("the dead-letter queue of this SQS queue (default CHARLA_SQS_QUEUE_URL), for a"
                " deployment on AWS; AWS credentials as boto3 finds them")
    p = jobs.add_parser("failed", help="list the jobs the worker gave up on, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--sqs", nargs="?", const="", metavar="QUEUE_URL", help=sqs_help)
    p.set_defaults(func=failed)
    p = jobs.add_parser("retry", help="put a failed job back in the queue")
    p.add_argument("id", nargs="?", help="the job's number (with --sqs: its message id)")
    p.add_argument("--all", action="store_true", help="with --sqs: every failed job")
    p.add_argument("--sqs", nargs="?", const="", metavar="QUEUE_URL", help=sqs_help)
    p.set_defaults(func=retry)
