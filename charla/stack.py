"""``charla up``: the whole local stack in one process group, stopped cleanly as one.

Embedded Postgres (unless ``DATABASE_URL``), the model server with the bundled model (unless
``MODEL_SERVER_URL``), the functions app and the worker. Children run in our process group, so
Ctrl-C or a SIGTERM to the group reaches them too; we then wait for each and stop Postgres
(which ``pg_ctl`` detaches into its own session) ourselves. A closed terminal (SIGHUP) stops the
stack the same way: the children ignore the hangup, which would kill them on the spot, and we
pass it on to them as SIGTERM. A child that dies meanwhile is started again
(charla/supervise.py): one crash does not take the bots down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from charla.home import local_environ
from charla.pg import EmbeddedPostgres
from charla.supervise import Child, Probe, StartError, Supervisor
from shared.errors import CharlaError
from shared.migrate import migrate
from shared.settings import Settings

DEV_TOKEN_TTL_S = 30 * 24 * 3600


def say(message: str) -> None:
    with contextlib.suppress(OSError):  # the terminal went away (SIGHUP): stop all the same
        print(f"charla: {message}", flush=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_ready(url: str) -> Probe:
    """Ready once ``url`` answers 200 (a ``/healthz``)."""

    def probe(child: Child) -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


WORKER_APP_NAME = "charla-worker"


def worker_connected(child: Child) -> bool:
    """Ready once the worker has connected to the database since it was started: it connects
    to take its first jobs. The worker has no port to ask; its sessions carry
    ``application_name`` (libpq's ``PGAPPNAME``, which :func:`_start_worker` sets), and those
    of the worker it replaces started before it did."""
    try:
        with psycopg.connect(child.env["DATABASE_URL"], connect_timeout=2, autocommit=True,
                             application_name="charla-up") as conn:
            # A span measured here, not a time: the database's clock need not be ours.
            age_s = time.monotonic() - child.started_at
            row = conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                " AND backend_start >= now() - make_interval(secs => %s) LIMIT 1",
                (child.env["PGAPPNAME"], age_s)).fetchone()
    except psycopg.Error:
        return False
    return row is not None


@dataclass
class Stack:
    """What ``charla up`` runs: the environment its children share, embedded Postgres if it
    started one, and the supervisor that keeps the children running."""

    environ: dict[str, str]
    settings: Settings
    postgres: EmbeddedPostgres | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.stopping, say)

    def start(self, name: str, module: str, ready: Probe | None, timeout_s: float,
              what: str, **extra: str) -> Child:
        """Start ``python -m module`` under the stack's environment (plus ``extra``) and wait
        until ``ready`` passes; from then on it is restarted when it dies."""
        child = Child(name, [sys.executable, "-m", module], {**self.environ, **extra},
                      ready=ready, start_timeout_s=timeout_s)
        return self.supervisor.start(child, lambda c: self._wait_ready(c, what))

    def _wait_ready(self, child: Child, what: str) -> None:
        if child.ready is None:
            return
        spinner = itertools.cycle("|/-\\")
        started = time.monotonic()
        deadline = started + child.start_timeout_s
        tty = sys.stdout.isatty()
        while time.monotonic() < deadline and not self.stopping.is_set():
            assert child.proc is not None
            if child.proc.poll() is not None:
                raise StartError(f"{child.name} exited during start (code "
                                 f"{child.proc.returncode}); its log is above")
            if child.ready(child):
                if tty:
                    print("\r", end="")
                say(f"{child.name} ready in {time.monotonic() - started:.1f} s")
                return
            if tty:
                print(f"\r{next(spinner)} {what} ({time.monotonic() - started:.0f} s)",
                      end="", flush=True)
            time.sleep(0.2)
        if not self.stopping.is_set():
            raise StartError(f"{child.name} did not become healthy within "
                             f"{child.start_timeout_s:.0f} s")

    def stop(self) -> None:
        self.supervisor.stop()
        if self.postgres is not None:
            self.postgres.stop()
            say("embedded Postgres stopped")


def _start_database(stack: Stack) -> None:
    if stack.settings.database_url is None:
        pgdata = stack.settings.home / "pgdata"
        say(f"starting embedded Postgres with pgvector ({pgdata})")
        stack.postgres = EmbeddedPostgres(pgdata)
        stack.environ["DATABASE_URL"] = stack.postgres.start()
    else:
        say("using the database at DATABASE_URL")
    url = stack.environ["DATABASE_URL"]
    applied = asyncio.run(migrate(url))
    say(f"database schema up to date ({len(applied)} migration(s) applied now)")


def _start_model_server(stack: Stack) -> None:
    settings = stack.settings
    if os.environ.get("MODEL_SERVER_URL"):
        say(f"using the model server at {settings.model_server_url}")
        return
    if not _port_free(settings.model_server_host, settings.model_server_port):
        raise StartError(f"port {settings.model_server_port} is taken; set MODEL_SERVER_PORT "
                         "or MODEL_SERVER_URL")
    if settings.engine == "llama-server" and settings.llama_server_bin is None:
        from charla.llamabuild import build

        # In the environment, so a restarted model server runs the same binary, unbuilt.
        stack.environ["CHARLA_LLAMA_SERVER_BIN"] = str(build())
    say(f"starting the model server on {settings.model_server_url}")
    stack.start("model server", "model_server",
                http_ready(settings.model_server_url + "/healthz"), 300, "loading the model")


def _start_functions(stack: Stack) -> None:
    settings = stack.settings
    if not _port_free(settings.host, settings.port):
        raise StartError(f"port {settings.port} is taken; set PORT to another")
    stack.start("functions app", "functions",
                http_ready(f"http://{settings.host}:{settings.port}/healthz"), 60,
                "starting the API")


def _start_worker(stack: Stack) -> None:
    say("starting the worker (answers Slack, Telegram and Discord)")
    url = stack.environ["DATABASE_URL"]
    # A DATABASE_URL that names its own application_name wins over PGAPPNAME: the worker's
    # sessions cannot be told apart then, and it counts as ready once it runs.
    named = conninfo_to_dict(url).get("application_name")
    stack.start("worker", "functions.worker", None if named else worker_connected, 60,
                "starting the worker", PGAPPNAME=WORKER_APP_NAME)


PLATFORM_SECRETS = {
    "slack": ("Slack", "/slack/events", "SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"),
    "telegram": ("Telegram", "/telegram/webhook", "TELEGRAM_BOT_TOKEN and TELEGRAM_SECRET_TOKEN"),
    "discord": ("Discord", "/discord/interactions",
                "DISCORD_PUBLIC_KEY and DISCORD_APPLICATION_ID"),
}


def _platform_lines(settings: Settings, api: str) -> str:
    from functions.platforms import enabled

    lines = []
    for name, on in enabled(settings).items():
        label, route, needs = PLATFORM_SECRETS[name]
        state = f"on   POST {api}{route}" if on else f"off  (set {needs})"
        lines.append(f"    {label:<9}{state}")
    return "\n".join(lines)


def _command() -> str:
    """How the user can call ``charla`` from their shell."""
    import shutil

    return "charla" if shutil.which("charla") else os.path.relpath(Path(sys.prefix) / "bin" /
                                                                  "charla")


def _banner(stack: Stack) -> None:
    from functions.api.auth import client_signer

    settings = Settings.from_env(stack.environ)
    api = f"http://{settings.host}:{settings.port}"
    try:
        token = client_signer(settings).sign("dev", ttl_s=DEV_TOKEN_TTL_S)
        # In the fragment, which browsers never send; the page stores it and clears the URL.
        web = f"{api}/#token={token}"
    except CharlaError:
        token = "(tokens come from your identity provider)"  # noqa: S105 - a message
        web = f"{api}/  (sign in with a token from your identity provider)"
    print(
        f"""
  Charla is up.
    API (OpenAI-compatible)  {api}/v1   model: {settings.model_name}
    Health                   {api}/healthz
    Model server             {settings.model_server_url}
    Admin view               {api}/admin  (token: {_command()} token --sub ops --scope admin)
  Web chat, signed in as dev (open this link):
      {web}
  Bots:
{_platform_lines(settings, api)}
    Development API token (30 days, sub=dev):
      {token}

    Try:  {_command()} chat
          TOKEN=$({_command()} token --sub you)
          curl {api}/v1/chat/completions -H "Authorization: Bearer $TOKEN" \\
               -H 'Content-Type: application/json' \\
               -d '{{"messages":[{{"role":"user","content":"Hola"}}]}}'
  Ctrl-C stops everything.
""",
        flush=True,
    )


def up(environ: Mapping[str, str] | None = None) -> int:
    """Start the stack and keep it running until a signal, or a child that keeps crashing
    (charla/supervise.py); return an exit code."""
    env = local_environ(os.environ if environ is None else environ)
    stack = Stack(environ=env, settings=Settings.from_env(env))
    if os.geteuid() == 0 and not env.get("DATABASE_URL"):
        print("charla: running as root: the embedded Postgres runs as user pgserver, and the "
              "folders above .charla/ are left passable (x), not readable, for it; run as an "
              "ordinary user to leave them as they are", file=sys.stderr, flush=True)

    def on_signal(signum: int, _frame: object) -> None:
        stack.stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    code = 0
    try:
        _start_database(stack)
        stack.settings = Settings.from_env(stack.environ)
        if not stack.stopping.is_set():
            _start_model_server(stack)
        if not stack.stopping.is_set():
            _start_functions(stack)
        if not stack.stopping.is_set():
            _start_worker(stack)
        if not stack.stopping.is_set():
            _banner(stack)
        reason = stack.supervisor.run()
        if reason is not None:
            say(reason)
            code = 1
    except (CharlaError, subprocess.CalledProcessError) as exc:
        say(f"could not start: {exc}")
        code = 1
    finally:
        say("stopping")
        stack.stop()
        say("stopped")
    return code

