"""``charla keys``: the data keys that seal message bodies at rest.

- ``status``: the keys, which one is current, and how many rows each one seals.
- ``rotate``: a new current key, then every body re-sealed with it in short batches while the
  stack serves traffic (processes that read the key file pick the new key up at once).
- ``retire ID``: drop a key no row uses any more; refused while one does.
- ``generate``: print a new ``id:base64`` key for ``CHARLA_DATA_KEYS`` or a secret.

With the keys in ``CHARLA_DATA_KEYS`` this command cannot reach the running processes: put the
new key first there (and in the secret the processes read it from), restart them, then run
``charla keys rotate`` to re-seal.
"""

from __future__ import annotations

import argparse
from typing import Any

from charla.home import with_database
from shared.db import Database
from shared.keyfile import add_key, encode_key, new_key, remove_key
from shared.rekey import reseal, sealed_with, usage


def _source(db: Database) -> str:
    return f"the key file {db.keys.path}" if db.keys.path else "CHARLA_DATA_KEYS"


def status(args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        current = db.keys.require()
        print(f"data keys from {_source(db)}: {', '.join(db.keys.ids)}; current: {current}")
        for table, per_key in (await usage(db)).items():
            counts = ", ".join(f"{n} under {k}" if k else f"{n} in clear"
                               for k, n in per_key.items()) or "none"
            print(f"  {table}: {counts}")
        return 0

    return with_database(work)


def rotate(args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        keys = db.keys
        if keys.path is not None and not args.reseal_only:
            key_id = add_key(keys.path)
            keys.refresh()
            print(f"new data key {key_id} is current ({keys.path}); running processes seal "
                  "with it from their next write")
        elif keys.path is None:
            print("data keys come from CHARLA_DATA_KEYS: re-sealing with its first key; to "
                  "rotate, put a new key first (charla keys generate), restart, run this again")
        current = keys.require()
        shown: dict[str, int] = {}

        def progress(table: str, done: int) -> None:
            if done - shown.get(table, 0) >= args.batch * 10 or table not in shown:
                print(f"  {table}: {done} re-sealed so far", flush=True)
                shown[table] = done

        counts = await reseal(db, batch=args.batch, progress=progress)
        for table, n in counts.items():
            print(f"  {table}: {n} row(s) re-sealed")
        others = [k for k in keys.ids if k != current]
        left = {k: await sealed_with(db, k) for k in others}
        if any(left.values()):
            print(f"rows still under older keys (written during the switch?): {left}; run "
                  "charla keys rotate --reseal-only again")
            return 1
        print(f"every body is sealed with {current}"
              + (f"; retire older keys with charla keys retire ID: {', '.join(others)}"
                 if others else ""))
        return 0

    return with_database(work)


def retire(args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        keys = db.keys
        if args.id == keys.require():
            print(f"charla: {args.id} is the current key: rotate to a new one first")
            return 1
        if args.id not in keys.ids:
            print(f"charla: no data key {args.id} in {_source(db)}")
            return 1
        left = await sealed_with(db, args.id)
        if left:
            rows = ", ".join(f"{n} in {table}" for table, n in left.items())
            print(f"charla: key {args.id} still seals rows ({rows}): run charla keys rotate "
                  "--reseal-only first")
            return 1
        if keys.path is None:
            print(f"no row uses {args.id}: remove it from CHARLA_DATA_KEYS (and the secret), "
                  "then restart the processes")
            return 0
        remove_key(keys.path, args.id)
        print(f"data key {args.id} retired: removed from {keys.path}")
        return 0

    return with_database(work)


def generate(args: argparse.Namespace) -> int:
    key_id, key = new_key()
    print(f"{key_id}:{encode_key(key)}")
    return 0


def _batch(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return number


def add_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="data keys sealing message bodies: status, rotate, "
                          "retire").add_subparsers(dest="action", required=True)
    p = keys.add_parser("status", help="the keys, the current one, and the rows each seals")
    p.set_defaults(func=status)
    p = keys.add_parser("rotate", help="make a new key current and re-seal every body with it")
    p.add_argument("--batch", type=_batch, default=500, help="rows per transaction")
    p.add_argument("--reseal-only", action="store_true",
                   help="no new key: re-seal what is not under the current one")
    p.set_defaults(func=rotate)
    p = keys.add_parser("retire", help="remove a key that no row uses any more")
    p.add_argument("id")
    p.set_defaults(func=retire)
    p = keys.add_parser("generate", help="print a new id:base64 key for CHARLA_DATA_KEYS")
    p.set_defaults(func=generate)
