"""The ``charla`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from charla.backup import add_commands as add_backup_commands
from charla.jobs import add_commands as add_job_commands
from charla.kb import add_commands as add_kb_commands
from charla.keys import add_commands as add_key_commands
from charla.model import add_commands as add_model_commands
from charla.package import add_commands as add_package_commands
from charla.platforms import add_commands
from charla.privacy import add_commands as add_privacy_commands
from shared.errors import CharlaError
from shared.settings import Settings


def _up(args: argparse.Namespace) -> int:
    from charla.stack import up

    return up()


def _token(args: argparse.Namespace) -> int:
    from charla.home import local_environ
    from functions.api.auth import client_signer

    settings = Settings.from_env(local_environ(os.environ, beside=True))
    scopes = tuple(args.scope or ())
    print(client_signer(settings).sign(args.sub, ttl_s=args.ttl, scopes=scopes))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from charla.chat import run_chat
    from charla.home import local_environ
    from functions.api.auth import client_signer

    settings = Settings.from_env(local_environ(os.environ, beside=True))
    token = args.token or os.environ.get("CHARLA_API_TOKEN")
    if not token:
        token = client_signer(settings).sign(args.sub, ttl_s=24 * 3600)
    url = args.url or os.environ.get("CHARLA_API_URL") or f"http://{settings.host}:{settings.port}"
    return run_chat(url, token, model=args.model, max_tokens=args.max_tokens)


def _migrate(args: argparse.Namespace) -> int:
    from shared.migrate import migrate

    settings = Settings.from_env()
    if settings.database_url is None:
        print("charla: DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate(settings.database_url.reveal()))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="charla", description="A team's own private chatbot.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the whole local stack (what make run starts)")
    p.set_defaults(func=_up)

    p = sub.add_parser("token", help="print a JWT that the API accepts")
    p.add_argument("--sub", required=True, help="who the token is for (the client's name)")
    p.add_argument("--ttl", type=_positive, default=3600, help="lifetime in seconds")
    p.add_argument("--scope", action="append", help="a scope to grant (repeatable)")
    p.set_defaults(func=_token)

    p = sub.add_parser("chat", help="chat with the API in this terminal")
    p.add_argument("--url", help="API base URL (default http://127.0.0.1:$PORT)")
    p.add_argument("--token", help="bearer token (default: a fresh development token)")
    p.add_argument("--sub", default="cli", help="subject of the development token")
    p.add_argument("--model", help="model name (default: the server's)")
    p.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    p.set_defaults(func=_chat)

    p = sub.add_parser("migrate", help="apply pending database migrations to DATABASE_URL")
    p.set_defaults(func=_migrate)

    add_commands(sub)
    add_backup_commands(sub)
    add_job_commands(sub)
    add_kb_commands(sub)
    add_key_commands(sub)
    add_package_commands(sub)
    add_model_commands(sub)
    add_privacy_commands(sub)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except CharlaError as exc:
        print(f"charla: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
