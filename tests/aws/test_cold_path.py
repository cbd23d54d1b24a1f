"""A function's cold path loads nothing heavy: checked in fresh interpreters, not timed.

Each function's handler is imported and handles its first event in a new process, against
moto (secrets, SQS) and Postgres on loopback, as bench/coldstart.py does to time it.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from bench.coldstart import HEAVY, heavy_modules, probe
from functions.platforms import NAMES
from tests.aws.conftest import Aws, Fakes, Queues, deploy, function_env
from tests.aws.events import http_event
from tests.aws.test_webhook_handlers import discord_event, slack_event, telegram_event
from tests.functions.test_bots_discord import interaction
from tests.functions.test_bots_slack import mention
from tests.functions.test_bots_telegram import update


@pytest.fixture
def environ(aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, aws_db_url: str,
            fakes: Fakes, service_keys: tuple[str, str]) -> dict[str, str]:
    env = function_env(service_keys, "http://127.0.0.1:9", aws_db_url, fakes, queues,
                       TELEGRAM_BOT_USERNAME="charla_test_bot")
    deploy(aws, monkeypatch, env)
    return dict(os.environ)


def first_event(entry: str, fakes: Fakes) -> dict[str, object]:
    if entry == "slack":
        return slack_event(mention("Cold?"))
    if entry == "telegram":
        return telegram_event(update(text="¿Frío?"))
    if entry == "discord":
        return discord_event(fakes, interaction(question="Cold?"))
    if entry == "api":
        return http_event("GET", "/healthz")
    return {"Records": [{"messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": "{}",
                         "attributes": {"ApproximateReceiveCount": "1"}}]}


@pytest.mark.parametrize("entry", ["slack", "telegram", "discord", "api", "worker"])
def test_nothing_heavy_is_loaded_by_import_and_first_request(
    entry: str, environ: dict[str, str], fakes: Fakes, aws: Aws, queues: Queues
) -> None:
    result = probe(entry, json.loads(json.dumps(first_event(entry, fakes))), environ)
    assert result["status"] == 200
    assert heavy_modules(result["modules"], entry) == []
    loaded = {m.split(".")[0] for m in result["modules"]}
    if entry in ("slack", "telegram", "discord"):
        assert queues.count(aws) == 1  # the first request did all its work
        assert "numpy" in HEAVY and "numpy" not in loaded
        # No database and no AWS SDK on a new message's way (docs/benchmarks.md): SQS and
        # the secret through shared/aws.py; the delivery is de-duplicated by the worker.
        assert {"jwt", "slowapi", "limits", "boto3", "botocore", "psycopg", "psycopg_pool",
                "httpx"} & loaded == set()


@pytest.mark.parametrize("entry", NAMES)
def test_a_webhook_function_loads_no_other_platform(
    entry: str, environ: dict[str, str], fakes: Fakes
) -> None:
    """Imported alone, as Lambda imports it, and through its first delivery: the platform's
    own folder is loaded, no other platform's module is."""
    result = probe(entry, json.loads(json.dumps(first_event(entry, fakes))), environ)
    assert result["status"] == 200
    folders = {tuple(m.split(".")[:2]) for m in result["modules"] if m.startswith("functions.")}
    assert ("functions", entry) in folders
    assert {("functions", other) for other in NAMES if other != entry} & folders == set()
