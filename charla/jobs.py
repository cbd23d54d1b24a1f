"""``charla jobs``: the failed jobs the worker gave up on, and putting one back in the queue."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from charla.home import with_database
from shared.queue import PgQueue


def _with_queue(work: Callable[[PgQueue], Awaitable[int]]) -> int:
    return with_database(lambda db: work(PgQueue(db)))


def failed(args: argparse.Namespace) -> int:
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
    async def work(queue: PgQueue) -> int:
        if await queue.retry_failed(args.id):
            print(f"job {args.id} queued again")
            return 0
        print(f"charla: no failed job {args.id}")
        return 1

    return _with_queue(work)


def add_commands(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="failed jobs: list them, retry one").add_subparsers(
        dest="action", required=True)
    p = jobs.add_parser("failed", help="list the jobs the worker gave up on, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=failed)
    p = jobs.add_parser("retry", help="put a failed job back in the queue")
    p.add_argument("id", type=int)
    p.set_defaults(func=retry)
