"""``charla user export|forget`` and ``charla purge``: a person's data, and data past retention."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from charla.home import stack_settings, with_database
from functions.platforms import kept
from shared import privacy, retention
from shared.db import Database


def _person(args: argparse.Namespace) -> privacy.Person:
    return privacy.Person(args.platform, args.user)


def export(args: argparse.Namespace) -> int:
    settings = stack_settings()
    person = _person(args)

    async def work(db: Database) -> int:
        counters = privacy.Counters(settings.rate_limit_storage).export(person)
        data = await privacy.export(db, person, counters=counters)
        try:
            json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
            print()
        except BrokenPipeError:  # piped into head and the like: not an error
            # Python flushes stdout again at exit; point it at /dev/null so that is quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    return with_database(work, settings)


def forget(args: argparse.Namespace) -> int:
    settings = stack_settings()
    person = _person(args)

    async def work(db: Database) -> int:
        removed = await privacy.forget(db, person)
        removed["rate_limit_counters"] = privacy.Counters(
            settings.rate_limit_storage).forget(person)
        print(privacy.summary(person, removed))
        return 0

    return with_database(work, settings)


def purge(args: argparse.Namespace) -> int:
    settings = stack_settings()

    async def work(db: Database) -> int:
        # What the platforms record beside deliveries (Slack's thread marks) goes with them.
        policy = retention.Policy.from_settings(settings, with_deliveries=kept())
        if args.dry_run:
            due = await retention.due(db, policy)
            print("would remove: " + retention.describe(due))
        else:
            done = await retention.purge(db, policy)
            print("removed: " + retention.describe(done))
        return 0

    return with_database(work, settings)


def add_commands(sub: Any) -> None:
    user = sub.add_parser("user", help="one person's stored data: export it or forget it"
                          ).add_subparsers(dest="action", required=True)
    for name, func, text in (
            ("export", export, "print every stored record about a person, as JSON"),
            ("forget", forget, "delete every stored record about a person (one transaction)")):
        p = user.add_parser(name, help=text)
        p.add_argument("--platform", required=True, choices=privacy.PLATFORMS)
        p.add_argument("--user", required=True, help="the platform's user id (api: the sub)")
        p.set_defaults(func=func)
    p = sub.add_parser("purge", help="delete what is past its retention (see settings)")
    p.add_argument("--dry-run", action="store_true", help="only say what would go")
    p.set_defaults(func=purge)
