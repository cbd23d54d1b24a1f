"""The local stack's own files under ``.charla/``: keys it creates when none are configured.

- ``service_ed25519.pem`` / ``.pub``: the functions sign service tokens with the private half;
  the model server gets only the public half.
- ``api_jwt_secret``: the shared secret that ``charla token`` signs development tokens with.
- ``data-keys.json``: the keys that seal message bodies at rest (``charla keys`` rotates them).

Files holding secrets are created 0600 in a 0700 folder, and never overwritten.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from shared.keyfile import create_key_file
from shared.tokens import generate_ed25519_pair

if TYPE_CHECKING:
    from shared.db import Database
    from shared.settings import Settings

T = TypeVar("T")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def home_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("CHARLA_HOME") or ".charla").expanduser().resolve()


def ensure_service_keys(home: Path) -> tuple[Path, Path]:
    private, public = home / "service_ed25519.pem", home / "service_ed25519.pub"
    if not private.exists():
        private_pem, public_pem = generate_ed25519_pair()
        _write_private(private, private_pem)
        public.write_text(public_pem)
    return private, public


def ensure_api_secret(home: Path) -> Path:
    path = home / "api_jwt_secret"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(48))
    return path


def ensure_data_keys(home: Path) -> Path:
    path = home / "data-keys.json"
    create_key_file(path)  # keeps a file that is there: rows sealed with its keys need them
    return path


def local_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` plus what the local stack needs and the user did not configure."""
    env = dict(environ)
    home = home_dir(env)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env["CHARLA_HOME"] = str(home)
    if not env.get("CHARLA_SERVICE_PRIVATE_KEY") and not env.get("CHARLA_SERVICE_PUBLIC_KEY"):
        private, public = ensure_service_keys(home)
        env["CHARLA_SERVICE_PRIVATE_KEY"] = str(private)
        env["CHARLA_SERVICE_PUBLIC_KEY"] = str(public)
    api_sources = ("CHARLA_API_JWT_SECRET", "CHARLA_API_JWT_PUBLIC_KEY", "CHARLA_API_JWKS_URL")
    if not any(env.get(name) for name in api_sources):
        env["CHARLA_API_JWT_SECRET"] = ensure_api_secret(home).read_text().strip()
    if not env.get("CHARLA_DATA_KEYS") and not env.get("CHARLA_DATA_KEY_FILE"):
        env["CHARLA_DATA_KEY_FILE"] = str(ensure_data_keys(home))
    return env


def running_stack_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """What a command beside a running ``charla up`` needs: the local keys, and the database
    (``DATABASE_URL``, else the embedded server that ``charla up`` runs, joined)."""
    from charla.pg import EmbeddedPostgres
    from shared.errors import ConfigError

    env = local_environ(environ)
    if not env.get("DATABASE_URL"):
        pgdata = home_dir(env) / "pgdata"
        if not (pgdata / "postmaster.pid").exists():
            raise ConfigError("no database: start the stack (charla up) or set DATABASE_URL")
        env["DATABASE_URL"] = EmbeddedPostgres(pgdata).start()  # joins the running server
    return env


def stack_settings() -> Settings:
    """The settings of a command beside the running stack (see :func:`running_stack_environ`)."""
    from shared.settings import Settings

    return Settings.from_env(running_stack_environ(os.environ))


def with_database(work: Callable[[Database], Awaitable[T]], settings: Settings | None = None
                  ) -> T:
    """Run ``work`` with the database of ``settings`` (by default :func:`stack_settings`),
    closed afterwards: what each ``charla`` subcommand that reads or writes data does."""
    from shared.db import Database, make_pool

    async def main() -> T:
        db = Database(make_pool(settings or stack_settings()))
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())
