"""``charla up``: the whole local stack in one process group, stopped cleanly as one.

Embedded Postgres (unless ``DATABASE_URL``), the model server with the bundled model (unless
``MODEL_SERVER_URL``), and the functions app. Children run in our process group, so Ctrl-C or a
SIGTERM to the group reaches them too; we then wait for each and stop Postgres (which ``pg_ctl``
detaches into its own session) ourselves. A closed terminal (SIGHUP) stops the stack the same
way: the children ignore the hangup, which would kill them on the spot, and we pass it on to
them as SIGTERM.
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

from charla.home import local_environ
from charla.pg import EmbeddedPostgres
from shared.errors import CharlaError
from shared.migrate import migrate
from shared.settings import Settings

DEV_TOKEN_TTL_S = 30 * 24 * 3600


def say(message: str) -> None:
    with contextlib.suppress(OSError):  # the terminal went away (SIGHUP): stop all the same
        print(f"charla: {message}", flush=True)


def _ignore_hangup() -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


class StartError(CharlaError):
    """The stack could not start; the message says which part and why."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    environ: dict[str, str]
    settings: Settings
    postgres: EmbeddedPostgres | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def spawn(self, name: str, module: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", module], env=self.environ,
                                preexec_fn=_ignore_hangup)
        self.children.append((name, proc))
        return proc

    def wait_healthy(self, name: str, url: str, proc: subprocess.Popen[bytes],
                     timeout_s: float, what: str) -> None:
        spinner = itertools.cycle("|/-\\")
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        tty = sys.stdout.isatty()
        while time.monotonic() < deadline and not self.stopping.is_set():
            if proc.poll() is not None:
                raise StartError(f"{name} exited during start (code {proc.returncode}); "
                                 "its log is above")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    if tty:
                        print("\r", end="")
                    say(f"{name} ready in {time.monotonic() - started:.1f} s")
                    return
            except httpx.HTTPError:
                pass
            if tty:
                print(f"\r{next(spinner)} {what} ({time.monotonic() - started:.0f} s)",
                      end="", flush=True)
            time.sleep(0.2)
        if not self.stopping.is_set():
            raise StartError(f"{name} did not become healthy within {timeout_s:.0f} s")

    def stop(self) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in time; killing it")
                proc.kill()
                proc.wait()
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

        stack.environ["CHARLA_LLAMA_SERVER_BIN"] = str(build())
    say(f"starting the model server on {settings.model_server_url}")
    proc = stack.spawn("model server", "model_server")
    stack.wait_healthy("model server", settings.model_server_url + "/healthz", proc, 300,
                       "loading the model")


def _start_functions(stack: Stack) -> None:
    settings = stack.settings
    if not _port_free(settings.host, settings.port):
        raise StartError(f"port {settings.port} is taken; set PORT to another")
    proc = stack.spawn("functions app", "functions")
    stack.wait_healthy("functions app", f"http://{settings.host}:{settings.port}/healthz",
                       proc, 60, "starting the API")


def _start_worker(stack: Stack) -> None:
    say("starting the worker (answers Slack, Telegram and Discord)")
    stack.spawn("worker", "functions.worker")


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
    """Start the stack and supervise it until a signal or a child's death; return an exit code."""
    env = local_environ(os.environ if environ is None else environ)
    stack = Stack(environ=env, settings=Settings.from_env(env))

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
        while not stack.stopping.wait(0.5):
            dead = [(n, p) for n, p in stack.children if p.poll() is not None]
            if dead:
                name, proc = dead[0]
                say(f"{name} exited unexpectedly (code {proc.returncode}); stopping")
                code = 1
                break
    except (CharlaError, subprocess.CalledProcessError) as exc:
        say(f"could not start: {exc}")
        code = 1
    finally:
        say("stopping")
        stack.stop()
        say("stopped")
    return code

