"""The webhook functions on Lambda: API Gateway events in, SQS messages out, one per delivery.

A webhook function on SQS holds no database connection for a new message: a platform's second
delivery of one event is queued again, with its delivery id, and the worker drops the copy
(test_worker_handler.py checks that it is answered once).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from functions.slack.verify import SignatureVerifier
from tests.aws.conftest import (
    Aws,
    Container,
    Fakes,
    Queues,
    delivered,
    deploy,
    function_env,
    jobs_in,
)
from tests.aws.events import Context, http_event
from tests.functions.bots import SLACK_SECRET, TELEGRAM_SECRET
from tests.functions.discord.events import event as discord_sample
from tests.functions.test_bots_discord import interaction
from tests.functions.test_bots_slack import mention, sample
from tests.functions.test_bots_telegram import update

SLACK = "functions.slack.lambda_handler"
TELEGRAM = "functions.telegram.lambda_handler"
DISCORD = "functions.discord.lambda_handler"


@pytest.fixture
def deployed(aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, aws_db_url: str,
             fakes: Fakes, service_keys: tuple[str, str]) -> dict[str, str]:
    env = function_env(service_keys, "http://127.0.0.1:9", aws_db_url, fakes, queues)
    deploy(aws, monkeypatch, env)
    return env


def slack_event(body: dict[str, Any] | bytes, *, secret: str = SLACK_SECRET,
                retry: int | None = None) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(int(time.time()))
    headers = {"content-type": "application/json", "user-agent": "Slackbot 1.0",
               "x-slack-request-timestamp": ts,
               "x-slack-signature": SignatureVerifier(secret).sign(raw, ts)}
    if retry is not None:
        headers |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
    return http_event("POST", "/slack/events", raw, headers)


def telegram_event(body: dict[str, Any], *, secret: str = TELEGRAM_SECRET) -> dict[str, Any]:
    # Sent base64-encoded, as API Gateway does with bodies it does not take for text.
    return http_event("POST", "/telegram/webhook", json.dumps(body).encode(),
                      {"content-type": "application/json",
                       "x-telegram-bot-api-secret-token": secret}, base64_body=True)


def discord_event(fakes: Fakes, body: dict[str, Any], *, tamper: bool = False
                  ) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", "user-agent": "Discord-Interactions/1.0",
               **{k.lower(): v for k, v in fakes.discord_keys.headers(
                   str(int(time.time())), raw).items()}}
    if tamper:
        raw = raw.replace(b'"type"', b'"type" ')
    return http_event("POST", "/discord/interactions", raw, headers)


def answer(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


def test_a_signed_slack_event_is_acknowledged_and_queued_with_its_delivery_id(
    deployed: dict[str, str], aws: Aws, queues: Queues, container: Container, aws_db_url: str
) -> None:
    body = mention("What is SQS?")
    first = container.invoke(SLACK, slack_event(body), Context("charla-slack"))
    assert first["statusCode"] == 200
    assert answer(first) == {"ok": True}
    # Slack retries: the same event again is acknowledged and queued as a copy.
    again = container.invoke(SLACK, slack_event(body, retry=1))
    assert again["statusCode"] == 200
    messages = queues.receive(aws)
    assert len(messages) == 2
    sends = set()
    for message, job in zip(messages, jobs_in(messages), strict=True):
        assert job["kind"] == "answer"
        assert job["payload"]["delivery_id"] == body["event_id"]
        assert job["payload"]["text"] == "What is SQS?"
        platform, delivery_id, sent_as = json.loads(message["Body"])["delivery"]
        assert (platform, delivery_id) == ("slack", body["event_id"])
        sends.add(sent_as)
        assert "What is SQS?" not in message["Body"]  # sealed
    assert len(sends) == 2  # each send names itself: the worker keeps the first, drops the copy
    assert not delivered(aws_db_url, "slack", body["event_id"])  # the worker records it


def test_a_bad_slack_signature_is_401_and_queues_nothing(
    deployed: dict[str, str], aws: Aws, queues: Queues, container: Container
) -> None:
    body = mention()
    response = container.invoke(SLACK, slack_event(body, secret="not-the-signing-secret"))
    assert response["statusCode"] == 401
    assert answer(response)["error"]["code"] == "invalid_signature"
    assert queues.count(aws) == 0


def test_slack_url_verification_through_api_gateway(
    deployed: dict[str, str], container: Container
) -> None:
    response = container.invoke(SLACK, slack_event(sample("url_verification")))
    assert answer(response) == {"challenge": sample("url_verification")["challenge"]}


def test_a_telegram_update_is_queued(
    deployed: dict[str, str], aws: Aws, queues: Queues, container: Container
) -> None:
    upd = update(text="Hola desde Lambda")
    response = container.invoke(TELEGRAM, telegram_event(upd))
    assert response["statusCode"] == 200
    [job] = jobs_in(queues.receive(aws))
    assert job["payload"]["delivery_id"] == str(upd["update_id"])
    assert job["payload"]["text"] == "Hola desde Lambda"
    assert queues.count(aws) == 1


def test_a_wrong_telegram_secret_is_401(
    deployed: dict[str, str], aws: Aws, queues: Queues, container: Container
) -> None:
    response = container.invoke(TELEGRAM, telegram_event(update(), secret="guess"))
    assert response["statusCode"] == 401
    assert queues.count(aws) == 0


def test_discord_ping_ask_and_a_bad_signature(
    deployed: dict[str, str], aws: Aws, queues: Queues, container: Container, fakes: Fakes
) -> None:
    pong = container.invoke(DISCORD, discord_event(fakes, discord_sample("ping")))
    assert (pong["statusCode"], answer(pong)) == (200, {"type": 1})

    ask = interaction(question="¿Qué es una cola?")
    deferred = container.invoke(DISCORD, discord_event(fakes, ask))
    assert (deferred["statusCode"], answer(deferred)) == (200, {"type": 5})
    [job] = jobs_in(queues.receive(aws))
    assert job["payload"]["delivery_id"] == ask["id"]

    refused = container.invoke(DISCORD, discord_event(fakes, interaction(), tamper=True))
    assert refused["statusCode"] == 401
    assert queues.count(aws) == 1


def test_sqs_down_answers_503_and_the_redelivery_is_taken(
    deployed: dict[str, str], aws: Aws, queues: Queues, container: Container, aws_db_url: str
) -> None:
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=["All"]
                                          )["Attributes"]
    sqs.delete_queue(QueueUrl=queues.url)
    body = mention("Are you there?")
    response = container.invoke(SLACK, slack_event(body))
    assert response["statusCode"] == 503  # Slack delivers the event again
    assert answer(response)["error"]["message"] == "temporarily unavailable; try again shortly"

    name = queues.url.rsplit("/", 1)[1]
    sqs.create_queue(QueueName=name, Attributes={
        k: attributes[k] for k in ("VisibilityTimeout", "RedrivePolicy")})
    retried = container.invoke(SLACK, slack_event(body, retry=1))
    assert retried["statusCode"] == 200
    [job] = jobs_in(queues.receive(aws))
    assert job["payload"]["delivery_id"] == body["event_id"]


def test_a_function_without_its_secrets_answers_500_and_says_why(
    aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, container: Container,
    caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHARLA_SECRETS_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:"
                       "secret:charla/missing-AbCdEf")
    response = container.invoke(SLACK, slack_event(mention()))
    assert response["statusCode"] == 500
    assert "ResourceNotFoundException" in caplog.text
