"""AWS played by moto's server on loopback; the functions run as Lambda would run them.

moto serves SQS, Secrets Manager and SSM over real HTTP on 127.0.0.1, and the code under test
reaches it with real boto3 through ``AWS_ENDPOINT_URL``. Postgres, the model server and the
platforms' fakes are the same as in the other suites. A :class:`Container` stands for one
Lambda container: a thread of its own with its own event loop, in which handler modules are
imported and invoked, one invocation at a time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import psycopg
import pytest
from moto.server import ThreadedMotoServer

from shared.crypto import KeyRing
from shared.keyfile import parse_keys
from shared.queue.sqs import job_from_record
from tests.aws.events import REGION, Context, sqs_event
from tests.conftest import DATA_KEYS, ServerThread, free_port, fresh_database
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.functions.bots import DISCORD_APP, DISCORD_TOKEN, TELEGRAM_TOKEN, bots_env
from tests.functions.discord.signing import ApplicationKeys

# What the deployment keeps in Secrets Manager; everything else is plain configuration.
SECRET_NAMES = ("DATABASE_URL", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "TELEGRAM_BOT_TOKEN",
                "TELEGRAM_SECRET_TOKEN", "DISCORD_BOT_TOKEN", "CHARLA_API_JWT_SECRET",
                "CHARLA_SERVICE_PRIVATE_KEY", "CHARLA_DATA_KEYS")
MAX_RECEIVES = 3
WORKER = "functions.worker.lambda_handler"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Aws:
    """Clients for the test's own arrangements and checks (real boto3, moto behind it)."""

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Aws:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "CHARLA_SECRETS_ARN", "CHARLA_SSM_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    return Aws()


@dataclass
class Queues:
    url: str
    arn: str
    dead_letters_url: str
    dead_letters_arn: str

    def count(self, aws: Aws, *, dead: bool = False) -> int:
        """Messages in the queue, visible or in flight."""
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=self.dead_letters_url if dead else self.url,
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attributes.values())

    def receive(self, aws: Aws, *, dead: bool = False, wait_s: int = 0,
                visibility_s: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "QueueUrl": self.dead_letters_url if dead else self.url,
            "MaxNumberOfMessages": 10, "WaitTimeSeconds": wait_s,
            "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]}
        if visibility_s is not None:
            params["VisibilityTimeout"] = visibility_s
        messages: list[dict[str, Any]] = aws.client("sqs").receive_message(
            **params).get("Messages", [])
        return messages


def create_queues(aws: Aws) -> Queues:
    """A queue and its dead-letter queue, as the deployment makes them."""
    sqs = aws.client("sqs")
    name = f"charla-jobs-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=name + "-dead")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]
                                       )["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "60", "RedrivePolicy": policy})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]
                                   )["Attributes"]["QueueArn"]
    return Queues(url, arn, dlq_url, dlq_arn)


@pytest.fixture
def queues(aws: Aws) -> Queues:
    return create_queues(aws)


@pytest.fixture(scope="module")
def aws_db_url(pg_url: str) -> str:
    # A database of its own: other suites' local workers must not see these deliveries.
    return fresh_database(pg_url)


def delivered(db_url: str, platform: str, delivery_id: str) -> bool:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT 1 FROM inbound_deliveries WHERE platform = %s AND"
                           " delivery_id = %s", (platform, delivery_id)).fetchone()
    return row is not None


@dataclass
class Fakes:
    slack: FakeSlack
    telegram: FakeTelegram
    discord: FakeDiscord
    discord_keys: ApplicationKeys
    urls: dict[str, str]


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    slack, telegram = FakeSlack(), FakeTelegram(TELEGRAM_TOKEN)
    discord = FakeDiscord(DISCORD_APP, DISCORD_TOKEN)
    servers = {name: ServerThread(fake.app).start()
               for name, fake in (("slack", slack), ("telegram", telegram), ("discord", discord))}
    yield Fakes(slack, telegram, discord, ApplicationKeys(),
                {name: server.url for name, server in servers.items()})
    for server in servers.values():
        server.stop()


def function_env(keys: tuple[str, str], model_server_url: str, db_url: str, fakes: Fakes,
                 queues: Queues, **extra: str) -> dict[str, str]:
    """Every setting of the functions, as the local bots suite has them, on SQS."""
    env = bots_env(keys, model_server_url, db_url, "memory://", fakes.urls,
                   fakes.discord_keys.public_key_hex, CHARLA_QUEUE="sqs",
                   CHARLA_SQS_QUEUE_URL=queues.url, CHARLA_RATE_LIMIT_STORAGE="memory://")
    env.update(extra)
    return env


def deploy(aws: Aws, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    """Configure the functions as the deployment does: secrets in one Secrets Manager secret
    (named by CHARLA_SECRETS_ARN), the rest in the environment. Returns the secret's ARN."""
    secret = {name: value for name, value in env.items() if name in SECRET_NAMES}
    arn: str = aws.client("secretsmanager").create_secret(
        Name=f"charla/{uuid.uuid4().hex[:8]}", SecretString=json.dumps(secret))["ARN"]
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name not in SECRET_NAMES:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHARLA_SECRETS_ARN", arn)
    return arn


def _own_loop() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())


class Container:
    """One Lambda container: handler modules imported and invoked in one thread of its own,
    with its own event loop, one invocation at a time."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda",
                                          initializer=_own_loop)

    def invoke(self, module: str, event: dict[str, Any],
               context: Context | None = None) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            answer: dict[str, Any] = import_module(module).handler(event, context or Context())
            return answer

        return self._thread.submit(call).result(timeout=120)

    def deliver(self, aws: Aws, queues: Queues, *, wait_s: int = 0
                ) -> tuple[list[dict[str, Any]], list[str]]:
        """What the SQS event source mapping does once: receive a batch, invoke the worker,
        delete the messages it did not report. Returns the batch and the reported ids."""
        messages = queues.receive(aws, wait_s=wait_s)
        if not messages:
            return [], []
        answer = self.invoke(WORKER, sqs_event(messages, queues.arn))
        failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        sqs = aws.client("sqs")
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queues.url, ReceiptHandle=message["ReceiptHandle"])
        return messages, failed

    def close(self) -> None:
        def end() -> None:
            from functions import lambda_app

            worker = sys.modules.get(WORKER)
            if worker is not None:
                worker.close()
            loop = asyncio.get_event_loop()
            loop.run_until_complete(lambda_app.aclose())
            loop.close()

        self._thread.submit(end).result(timeout=60)
        self._thread.shutdown()


@pytest.fixture
def container() -> Iterator[Container]:
    running = Container()
    yield running
    running.close()


def jobs_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message's job, its sealed fields opened with the test stacks' data keys."""
    keys = KeyRing(*parse_keys(DATA_KEYS))
    jobs = [job_from_record({"messageId": m["MessageId"], "body": m["Body"],
                             "attributes": m.get("Attributes", {})}, keys) for m in messages]
    return [{"kind": job.kind, "payload": job.payload} for job in jobs]
