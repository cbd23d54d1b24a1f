"""The charla command: tokens the API accepts, and the terminal chat."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from charla.chat import run_chat
from functions.api.auth import client_verifier
from shared.audit import open_bodies
from shared.crypto import KeyRing
from shared.settings import Settings
from tests.conftest import API_SECRET, Api

CHARLA = [sys.executable, "-c", "from charla.cli import main; main()"]


def charla(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHARLA, *args], env={**os.environ, **env}, text=True,
                          capture_output=True, timeout=60, check=False)


def charla_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``charla`` run in ``folder``, with no CHARLA_HOME: it finds its stack by itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARLA_")}
    return subprocess.run([*CHARLA, *args], env=env, cwd=folder, text=True,
                          capture_output=True, timeout=60, check=False)


def test_token_is_signed_with_the_local_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # the stack's home, as charla up makes it
    done = charla("token", "--sub", "alice", "--ttl", "120", env={"CHARLA_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    secret = (home / "api_jwt_secret").read_text().strip()
    assert oct((home / "api_jwt_secret").stat().st_mode)[-3:] == "600"
    claims = client_verifier(Settings.from_env({"CHARLA_API_JWT_SECRET": secret})).verify(token)
    assert claims.sub == "alice"
    assert 100 < claims.expires_at - time.time() <= 120
    # A second call signs with the same secret: it is created once, never overwritten.
    again = charla("token", "--sub", "bob", env={"CHARLA_HOME": str(home)})
    assert (home / "api_jwt_secret").read_text().strip() == secret
    assert client_verifier(Settings.from_env({"CHARLA_API_JWT_SECRET": secret})).verify(
        again.stdout.strip()).sub == "bob"


def test_a_command_below_the_stack_s_folder_uses_its_keys(tmp_path: Path) -> None:
    """Run from a subfolder of the checkout, the command finds the stack's .charla above, as
    git finds its repository, and signs with its secret."""
    home = tmp_path / ".charla"
    home.mkdir(mode=0o700)
    (home / "api_jwt_secret").write_text("s" * 48)
    below = tmp_path / "docs" / "notes"
    below.mkdir(parents=True)
    done = charla_in(below, "token", "--sub", "alice")
    assert done.returncode == 0, done.stderr
    verifier = client_verifier(Settings.from_env({"CHARLA_API_JWT_SECRET": "s" * 48}))
    assert verifier.verify(done.stdout.strip()).sub == "alice"
    assert not (below / ".charla").exists()


def test_a_command_away_from_any_stack_says_so_and_makes_no_keys(tmp_path: Path) -> None:
    """It used to make a .charla/ with new keys where it ran: tokens the stack refused."""
    done = charla_in(tmp_path, "token", "--sub", "alice")
    assert done.returncode == 2
    assert done.stderr.startswith("charla: no local stack here: no .charla/ in ")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / ".charla").exists()
    missing = charla("token", "--sub", "x", env={"CHARLA_HOME": str(tmp_path / "typo")})
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "typo").exists()


def test_token_is_accepted_by_the_api(api: Api, tmp_path: Path) -> None:
    done = charla("token", "--sub", "cli-user",
                  env={"CHARLA_HOME": str(tmp_path), "CHARLA_API_JWT_SECRET": API_SECRET})
    response = httpx.get(api.url + "/v1/models",
                         headers={"Authorization": f"Bearer {done.stdout.strip()}"})
    assert response.status_code == 200


@pytest.mark.parametrize("args", [["token"], ["token", "--sub", "x", "--ttl", "0"], ["nope"]])
def test_bad_arguments_are_refused(args: list[str], tmp_path: Path) -> None:
    done = charla(*args, env={"CHARLA_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert "usage" in done.stderr or "error" in done.stderr


def test_token_refuses_a_secret_the_api_would_refuse(tmp_path: Path) -> None:
    done = charla("token", "--sub", "x", env={"CHARLA_HOME": str(tmp_path),
                                              "CHARLA_API_JWT_SECRET": "short-secret"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "charla: the JWT secret must be at least 32 bytes long\n"


def test_token_without_a_secret_says_why(tmp_path: Path) -> None:
    done = charla("token", "--sub", "x", env={"CHARLA_HOME": str(tmp_path),
                                              "CHARLA_API_JWKS_URL": "https://idp/jwks"})
    assert done.returncode == 2
    assert "identity provider" in done.stderr


def test_chat_streams_and_keeps_the_history(api: Api, tmp_path: Path) -> None:
    sub = f"chat-{uuid.uuid4().hex[:6]}"
    lines = iter(["My name is Ada.", "What is my name?", "/reset", "Hello", "/exit"])
    out = tmp_path / "out.txt"
    with out.open("w") as handle:
        code = run_chat(api.url, api.token(sub), max_tokens=30,
                        read=lambda _prompt: next(lines), out=handle)
    assert code == 0
    text = out.read_text()
    assert text.count("bot> ") == 3
    assert "(conversation forgotten)" in text
    rows = _exchanges(api, sub, 3)
    assert len(rows) == 3
    first, second, third = rows
    # The second question was sent with the first exchange before it...
    assert [m["content"] for m in second[0]] == ["My name is Ada.", first[1], "What is my name?"]
    # ...and after /reset the history starts again.
    assert [m["content"] for m in third[0]] == ["Hello"]
    # What was printed is what the API answered.
    assert first[1] in text and second[1] in text


def _exchanges(api: Api, client: str, count: int) -> list[tuple[list[dict[str, str]], str]]:
    """The audit rows of ``client``; streamed exchanges are recorded just after the stream."""
    assert api.settings.database_url is not None
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(api.settings.database_url.reveal(), row_factory=dict_row) as conn:
            rows = conn.execute("SELECT client, request_messages, answer, body_sealed FROM"
                                " api_exchanges WHERE client = %s ORDER BY id",
                                (client,)).fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            keys = KeyRing.from_settings(api.settings)
            return [open_bodies(keys, row) for row in rows]
        time.sleep(0.05)


def test_chat_reports_errors_and_goes_on(api: Api, tmp_path: Path) -> None:
    lines = iter(["hello", "/exit"])
    out = tmp_path / "out.txt"
    with out.open("w") as handle:
        code = run_chat(api.url, "not-a-token", read=lambda _prompt: next(lines), out=handle)
    assert code == 0
    assert "[error] 401" in out.read_text()
