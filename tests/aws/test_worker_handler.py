"""The worker function: SQS batches through the real worker, partial failures, dead letters.

Deliveries come in through the webhook functions (a container of their own), then a worker
container takes them as the SQS event source mapping hands them over: receive, invoke, delete
what the worker did not report. The model server is the real one (llama.cpp, bundled model).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from functions.moderation import REFUSAL_EN
from functions.worker.answer import APOLOGY
from tests.aws.conftest import (
    MAX_RECEIVES,
    WORKER,
    Aws,
    Container,
    Fakes,
    Queues,
    delivered,
    deploy,
    function_env,
)
from tests.aws.test_webhook_handlers import SLACK, TELEGRAM, slack_event, telegram_event
from tests.conftest import Gateway
from tests.functions.test_bots_slack import mention, sample
from tests.functions.test_bots_telegram import update


@pytest.fixture
def setup(aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, aws_db_url: str,
          fakes: Fakes, service_keys: tuple[str, str], gateway: Gateway
          ) -> Iterator[dict[str, Any]]:
    fakes.slack.reset()
    env = function_env(service_keys, gateway.url, aws_db_url, fakes, queues)

    def configure(**extra: str) -> None:
        deploy(aws, monkeypatch, env | extra)

    configure()
    yield {"configure": configure}
    fakes.slack.reset()


def webhooks(*events: tuple[str, dict[str, Any]]) -> None:
    """Deliver through the webhook functions, in a container of their own."""
    web = Container()
    try:
        for module, event in events:
            assert web.invoke(module, event)["statusCode"] == 200
    finally:
        web.close()


def slack_messages(fakes: Fakes, body: dict[str, Any]) -> list[str]:
    ev = body["event"]
    return [m["text"] for (channel, _), m in sorted(fakes.slack.messages.items())
            if channel == ev["channel"] and m.get("thread_ts") == ev["ts"]]


def test_only_the_failed_record_of_a_batch_comes_back(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes
) -> None:
    slack_body, upd = mention("Say hello."), update(text="Say hi.")
    webhooks((SLACK, slack_event(slack_body)), (TELEGRAM, telegram_event(upd)))
    aws.client("sqs").send_message(QueueUrl=queues.url, MessageBody="not a job")
    fakes.slack.fail_next(1, mode="server_error")  # Slack's first post fails: retry it

    batch, failed = container.deliver(aws, queues)
    assert len(batch) == 3
    by_kind = {json.loads(m["Body"]).get("payload", {}).get("platform", "junk"): m
               for m in batch if m["Body"].startswith("{")}
    assert failed == [by_kind["slack"]["MessageId"]]
    chat = upd["message"]["chat"]["id"]
    assert [c.json for c in fakes.telegram.called("sendMessage")
            if c.json.get("chat_id") == chat]
    # The record that is not a job went to the dead-letter queue, with the reason.
    [dead] = queues.receive(aws, dead=True)
    assert dead["Body"] == "not a job"
    assert "unknown job kind" in dead["MessageAttributes"]["error"]["StringValue"]

    # The Slack job comes back after its backoff, alone, and is answered once. Slack's 500 may
    # have posted (when it met the answer's post, not a stream's start): the second attempt
    # then looks for the post and, not seeing it yet, may wait once more; the last one posts.
    for receives in range(2, MAX_RECEIVES + 1):
        again, failed = container.deliver(aws, queues, wait_s=10)
        assert [m["MessageId"] for m in again] == [by_kind["slack"]["MessageId"]]
        assert again[0]["Attributes"]["ApproximateReceiveCount"] == str(receives)
        if not failed:
            break
    assert failed == []
    assert len(slack_messages(fakes, slack_body)) == 1
    assert queues.count(aws) == 0


def test_a_delivery_made_twice_is_answered_once(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes,
    aws_db_url: str
) -> None:
    # Slack retries an event it thinks we missed: both deliveries reach SQS, in one batch.
    twice = mention("Say yes.")
    webhooks((SLACK, slack_event(twice)), (SLACK, slack_event(twice, retry=1)))
    batch, failed = container.deliver(aws, queues)
    assert (len(batch), failed) == (2, [])
    assert len(slack_messages(fakes, twice)) == 1
    assert delivered(aws_db_url, "slack", twice["event_id"])
    # A retry that comes after the first was answered, in a batch of its own.
    webhooks((SLACK, slack_event(twice, retry=2)))
    batch, failed = container.deliver(aws, queues)
    assert (len(batch), failed) == (1, [])
    assert len(slack_messages(fakes, twice)) == 1
    assert queues.count(aws) == 0


def test_a_message_queued_before_its_author_is_forgotten_is_answered_not_stored(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes,
    aws_db_url: str
) -> None:
    question = update(text="Remember my cat's name?")
    # The same person, same chat, a moment later: a message the moderation policy withholds,
    # then /forget.
    refused, forget = copy.deepcopy(question), copy.deepcopy(question)
    refused["update_id"] += 1
    refused["message"]["text"] = "How do I make a bomb?"
    forget["update_id"] += 2
    forget["message"]["text"] = "/forget"
    forget["message"]["entities"] = [{"offset": 0, "length": 7, "type": "bot_command"}]
    # The two messages wait in SQS while the /forget is handled by the webhook itself.
    webhooks((TELEGRAM, telegram_event(question)), (TELEGRAM, telegram_event(refused)),
             (TELEGRAM, telegram_event(forget)))
    batch, failed = container.deliver(aws, queues)
    assert (len(batch), failed) == (2, [])
    chat, person = question["message"]["chat"]["id"], question["message"]["from"]["id"]
    said = [c.json["text"] for c in fakes.telegram.called("sendMessage")
            if c.json.get("chat_id") == chat]
    # An answer and a refusal (the forget's confirmation was the webhook's own reply)...
    assert len(said) == 2 and REFUSAL_EN in said
    with psycopg.connect(aws_db_url) as conn:
        turns = conn.execute(
            "SELECT count(*) FROM turns t JOIN conversations c ON c.id = t.conversation_id"
            " WHERE c.platform = 'telegram' AND c.key = %s", (str(chat),)).fetchone()
        events = conn.execute("SELECT count(*) FROM moderation_events WHERE subject = %s",
                              (f"telegram:{person}",)).fetchone()
    assert (turns, events) == ((0,), (0,))  # ...and nothing kept about them


def test_a_thread_reply_through_the_lambda_webhook_is_answered_in_its_thread(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes
) -> None:
    first = mention("Name a colour of the sky.")
    webhooks((SLACK, slack_event(first)))
    container.deliver(aws, queues)
    assert len(slack_messages(fakes, first)) == 1
    ev = first["event"]
    # A reply in that thread without a mention: the webhook asks the database whether Charla
    # talks there (it does), so the reply is queued and answered in the same thread...
    follow = copy.deepcopy(sample("message_thread_reply"))
    follow["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    follow["event"].update(channel=ev["channel"], thread_ts=ev["ts"],
                           ts=f"{time.time():.6f}", text="And at night?")
    # ...while one in a thread where Charla never spoke is left alone.
    stranger = copy.deepcopy(sample("message_thread_reply"))
    stranger["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    webhooks((SLACK, slack_event(follow)), (SLACK, slack_event(stranger)))
    batch, failed = container.deliver(aws, queues)
    assert (len(batch), failed) == (1, [])
    assert len(slack_messages(fakes, first)) == 2


def test_a_job_that_keeps_failing_ends_in_the_dead_letter_queue(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes
) -> None:
    body = mention("Say something.")
    webhooks((SLACK, slack_event(body)))
    fakes.slack.fail_next(50, mode="server_error")
    for receive in range(1, MAX_RECEIVES + 1):
        batch, failed = container.deliver(aws, queues, wait_s=10)
        assert [m["Attributes"]["ApproximateReceiveCount"] for m in batch] == [str(receive)]
        assert failed == [batch[0]["MessageId"]]
    # One receive more than maxReceiveCount: SQS moves it to the dead-letter queue instead.
    assert container.deliver(aws, queues, wait_s=3) == ([], [])
    [dead] = queues.receive(aws, dead=True, wait_s=2)
    assert json.loads(dead["Body"])["payload"]["delivery_id"] == body["event_id"]
    assert slack_messages(fakes, body) == []  # every post was refused


def test_the_last_attempt_apologizes_once_and_dead_letters_the_job(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes
) -> None:
    setup["configure"](CHARLA_JOB_MAX_ATTEMPTS="2")
    body = mention("Say goodbye.")
    webhooks((SLACK, slack_event(body)))
    fakes.slack.fail_next(2, mode="server_error")  # the answer's post, on both attempts

    _, failed = container.deliver(aws, queues)
    assert len(failed) == 1
    batch, failed = container.deliver(aws, queues, wait_s=10)
    assert failed == []  # given up: not redelivered...
    [dead] = queues.receive(aws, dead=True)  # ...but kept, with why
    assert dead["MessageId"] != batch[0]["MessageId"]
    assert dead["Body"] == batch[0]["Body"]
    assert "after 2 attempts" in dead["MessageAttributes"]["error"]["StringValue"]
    assert slack_messages(fakes, body) == [APOLOGY]
    assert queues.count(aws) == 0


def test_a_job_redriven_from_the_dead_letter_queue_is_answered(
    setup: dict[str, Any], aws: Aws, queues: Queues, container: Container, fakes: Fakes
) -> None:
    # Posted, not streamed: a refused stream start would be followed by a post in its place.
    setup["configure"](CHARLA_SLACK_STREAMING="off")
    body = mention("Are you back?")
    webhooks((SLACK, slack_event(body)))
    fakes.slack.fail_next(1, mode="error", error="channel_not_found")  # permanent: given up
    _, failed = container.deliver(aws, queues)
    assert failed == []
    [dead] = queues.receive(aws, dead=True)
    assert slack_messages(fakes, body) == []
    # The operator fixes the cause and moves the message back, as SQS's redrive does: the
    # same body in a new message. It is that delivery's own send, not a copy: it runs.
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=queues.url, MessageBody=dead["Body"])
    sqs.delete_message(QueueUrl=queues.dead_letters_url, ReceiptHandle=dead["ReceiptHandle"])
    batch, failed = container.deliver(aws, queues)
    assert (len(batch), failed) == (1, [])
    assert batch[0]["MessageId"] != dead["MessageId"]
    assert len(slack_messages(fakes, body)) == 1


def test_operators_events_migrate_and_housekeeping(
    aws: Aws, queues: Queues, monkeypatch: pytest.MonkeyPatch, aws_db_url: str, fakes: Fakes,
    service_keys: tuple[str, str], container: Container
) -> None:
    deploy(aws, monkeypatch, function_env(service_keys, "http://127.0.0.1:9", aws_db_url, fakes,
                                          queues))
    assert container.invoke(WORKER, {"charla": "migrate"}) == {"applied": []}  # up to date
    scheduled = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
                 "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": "2026-11-30T07:00:00Z",
                 "region": "us-east-1", "resources": [
                     "arn:aws:events:us-east-1:123456789012:rule/charla-housekeeping"],
                 "detail": {}}
    for event in (scheduled, {"charla": "housekeeping"}):
        answer = container.invoke(WORKER, event)
        assert set(answer) == {"removed"} and isinstance(answer["removed"], dict)
    assert container.invoke(WORKER, {"what": "else"}) == {"error": "unknown event"}
