"""``charla model fetch`` against a stand-in model hub on loopback (HF_ENDPOINT), which serves
the bundled GGUF file the way the Hub serves a repository's file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from model_server.engines.llama_server import bundled_model_path
from tests.conftest import ServerThread

REPO, COMMIT = "team/charla-test-GGUF", "0123456789abcdef0123456789abcdef01234567"
CHARLA = [sys.executable, "-c", "from charla.cli import main; main()"]


class Hub:
    """``/{repo}/resolve/{revision}/{file}``, HEAD and GET, with the Hub's headers."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.downloads = 0

    def app(self) -> Starlette:
        async def resolve(request: Request) -> Response:
            repo = f"{request.path_params['owner']}/{request.path_params['name']}"
            data = self.files.get(request.path_params["file"])
            if repo != REPO or data is None:
                return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound"})
            headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "X-Repo-Commit": COMMIT, "Content-Length": str(len(data))}
            if request.method == "HEAD":
                return Response(headers=headers)
            self.downloads += 1
            return Response(data, headers=headers, media_type="application/octet-stream")

        return Starlette(routes=[Route("/{owner}/{name}/resolve/{revision}/{file}", resolve,
                                       methods=["GET", "HEAD"])])


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[Hub, str]]:
    stand_in = Hub({"model-Q4.gguf": bundled_model_path().read_bytes(),
                    "notes.gguf": b"not a model at all"})
    server = ServerThread(stand_in.app()).start()
    yield stand_in, server.url
    server.stop()


def fetch(url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": url, "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HOME": str(folder / "hf-home")}
    return subprocess.run([*CHARLA, "model", "fetch", *args, "--dir", str(folder)], env=env,
                          text=True, capture_output=True, timeout=120, check=False)


def test_a_model_is_fetched_checked_and_its_setting_printed(hub: tuple[Hub, str],
                                                            tmp_path: Path) -> None:
    stand_in, url = hub
    done = fetch(url, tmp_path, REPO, "model-Q4.gguf")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CHARLA_MODEL_PATH=")
    path = Path(done.stdout.strip().split("=", 1)[1])
    assert path.read_bytes() == bundled_model_path().read_bytes()
    # Fetched again: already there, nothing downloaded.
    before = stand_in.downloads
    assert fetch(url, tmp_path, REPO, "model-Q4.gguf").returncode == 0
    assert stand_in.downloads == before


@pytest.mark.parametrize(("file", "said"), [
    ("notes.gguf", "is not a GGUF file"),
    ("missing.gguf", "has no file missing.gguf"),
    ("model.bin", "GGUF files"),
])
def test_what_is_not_a_model_is_refused_in_one_line(hub: tuple[Hub, str], tmp_path: Path,
                                                    file: str, said: str) -> None:
    done = fetch(hub[1], tmp_path, REPO, file)
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not list(tmp_path.rglob(file))  # nothing left behind
