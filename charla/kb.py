"""``charla ingest | collections | forget | grant | revoke | grants | reindex``: the knowledge
base from the command line, beside a running ``charla up`` (or with DATABASE_URL and
MODEL_SERVER_URL set).

The operator's command line may do anything; API clients read and write only what it grants
them (``charla grant hr api:ci --write``). A collection name that breaks the rule
(shared/knowledge/names.py) is one line and exit 2, before anything is opened."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charla.home import stack_settings, with_database
from shared.errors import CharlaError
from shared.knowledge.names import collection_name

if TYPE_CHECKING:
    from shared.db import Database

SUB = "cli:ingest"  # the model server's limits count the command line as one user


def _files(paths: list[str]) -> Iterator[Path]:
    """Every supported file under ``paths`` (files as given; folders walked, sorted)."""
    from shared.knowledge.parse import SUPPORTED

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and found.suffix.lower() in SUPPORTED:
                    yield found
        elif path.exists():
            yield path
        else:
            raise CharlaError(f"{raw}: no such file or folder")


def _source(path: Path, roots: list[str]) -> str:
    """A document's name in the collection: its path under the folder it was found in."""
    for root in roots:
        base = Path(root)
        if base.is_dir():
            try:
                return str(path.relative_to(base))
            except ValueError:
                continue
    return path.name


def _with_knowledge(work: Callable[[Any], Awaitable[int]]) -> int:
    from functions.knowledge import Knowledge
    from functions.model_client import ModelClient, ModelServerError

    settings = stack_settings()

    async def with_model(db: Database) -> int:
        model = ModelClient(settings)
        try:
            return await work(Knowledge(db, model))
        except ModelServerError as exc:  # one line saying so, not a traceback
            raise CharlaError(f"{exc} ({settings.model_server_url})") from None
        finally:
            await model.close()

    return with_database(with_model, settings)


def ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    collection_name(args.collection)
    files = list(_files(args.paths))
    if not files and not args.prune:
        print("charla: no supported files found (.txt .md .pdf .html .docx)", file=sys.stderr)
        return 2

    async def work(kb: Any) -> int:
        ingestor = kb.ingestor(SUB)
        collection = await ingestor.collection(args.collection)
        counts: dict[str, int] = {}
        with tqdm(total=len(files), unit="file", desc=f"ingest → {collection.name}",
                  disable=args.quiet) as bar:
            def progress(outcome: Any) -> None:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
                if outcome.status == "failed":
                    bar.write(f"  failed: {outcome.source}: {outcome.error}")
                elif outcome.status != "removed":
                    bar.update(1)
                bar.set_postfix_str(f"{outcome.status} {outcome.source}"[:50])

            pairs = ((_source(p, args.paths), p.read_bytes()) for p in files)
            outcomes = await ingestor.ingest(collection, pairs, prune=args.prune,
                                             progress=progress)
        chunks = sum(o.chunks for o in outcomes)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"{collection.name}: {summary or 'nothing to do'}; {chunks} chunks written")
        return 1 if counts.get("failed") else 0

    return _with_knowledge(work)


def collections(args: argparse.Namespace) -> int:
    async def work(kb: Any) -> int:
        found = await kb.store.collections()
        if not found:
            print("no collections yet: charla ingest PATH --collection NAME")
        for c in found:
            print(f"{c.name}\t{c.documents} documents\t{c.chunks} chunks\t"
                  f"{c.embedding_model} ({c.dimensions}-d)")
        return 0

    return _with_knowledge(work)


def forget(args: argparse.Namespace) -> int:
    collection_name(args.collection)

    async def work(kb: Any) -> int:
        gone = await kb.store.forget_collection(args.collection)
        print(f"forgot {args.collection!r}: {gone} chunks, with its documents and grants")
        return 0

    return _with_knowledge(work)


def grant(args: argparse.Namespace) -> int:
    collection_name(args.collection)

    async def work(kb: Any) -> int:
        from shared.knowledge.store import KnowledgeError

        try:
            await kb.store.grant(args.collection, args.principal, write=args.write)
        except KnowledgeError:
            if not args.write:
                raise  # reading an empty collection is no use: a typo, most likely
            # Granting a program the right to publish comes before anything is in the
            # collection, and programs may not create collections themselves.
            created = await kb.ingestor(SUB).collection(args.collection)
            print(f"created the empty collection {created.name!r} "
                  f"({created.embedding_model}, {created.dimensions}-d)")
            await kb.store.grant(args.collection, args.principal, write=True)
        rights = "read and write to" if args.write else "read"
        print(f"{args.principal} may now {rights} {args.collection!r}")
        return 0

    return _with_knowledge(work)


def revoke(args: argparse.Namespace) -> int:
    collection_name(args.collection)

    async def work(kb: Any) -> int:
        if await kb.store.revoke(args.collection, args.principal, write_only=args.write):
            print(f"{args.principal} may no longer write to {args.collection!r} (it still "
                  "reads it)" if args.write else
                  f"{args.principal} may no longer read {args.collection!r}")
            return 0
        kind = "write grant" if args.write else "grant"
        print(f"charla: {args.principal} had no {kind} on {args.collection!r}",
              file=sys.stderr)
        return 1

    return _with_knowledge(work)


def grants(args: argparse.Namespace) -> int:
    async def work(kb: Any) -> int:
        found = await kb.store.grants()
        if not found:
            print("no grants: charla grant COLLECTION PRINCIPAL (e.g. slack:T0123:C0456)")
        for g in found:
            print(f"{g.collection}\t{g.principal}\t{g.rights}")
        return 0

    return _with_knowledge(work)


def reindex(args: argparse.Namespace) -> int:
    collection_name(args.collection)

    async def work(kb: Any) -> int:
        collection = await kb.store.collection(args.collection)
        if collection is None:
            raise CharlaError(f"no collection named {args.collection!r}")
        embed = kb.embedder(SUB)
        count = await kb.store.reembed(collection, lambda texts: embed(texts, False))
        print(f"{collection.name}: {count} chunks embedded again")
        return 0

    return _with_knowledge(work)


PRINCIPALS = ("slack:TEAM:CHANNEL, slack:TEAM, telegram:CHAT_ID, discord:GUILD:CHANNEL, "
              "discord:GUILD, discord:dm, api:CLIENT")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ingest", help="add documents to the knowledge base (progress bar)")
    p.add_argument("paths", nargs="+", help="files or folders (.txt .md .pdf .html .docx)")
    p.add_argument("--collection", default="default", help="the collection (default: default)")
    p.add_argument("--prune", action="store_true",
                   help="remove documents of the collection whose files are no longer given")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=ingest)

    p = sub.add_parser("collections", help="list collections with their counts")
    p.set_defaults(func=collections)

    p = sub.add_parser("forget", help="delete a collection, its documents and grants")
    p.add_argument("--collection", required=True)
    p.set_defaults(func=forget)

    for name, func, text, write in (
            ("grant", grant, "let a chat or client read a collection",
             "let an API client also add and delete documents in it (creates the "
             "collection if it does not exist)"),
            ("revoke", revoke, "take a grant back",
             "take back only the right to write: reading stays")):
        p = sub.add_parser(name, help=text)
        p.add_argument("collection")
        p.add_argument("principal", help=PRINCIPALS)
        p.add_argument("--write", action="store_true", help=write)
        p.set_defaults(func=func)

    p = sub.add_parser("grants", help="who may read (or read and write) which collection")
    p.set_defaults(func=grants)

    p = sub.add_parser("reindex", help="embed a collection again with the model server's "
                                       "current embedding model")
    p.add_argument("--collection", required=True)
    p.set_defaults(func=reindex)
