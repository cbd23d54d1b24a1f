"""``charla jobs failed --sqs`` and ``charla jobs retry --sqs``: the dead-letter queue of a
deployment on AWS, read and redriven by the command line (real boto3, moto's server)."""

from __future__ import annotations

import asyncio
import uuid

from charla.dead_letters import Boto3Calls
from shared.crypto import KeyRing
from shared.keyfile import parse_keys
from shared.queue.sqs import SqsBatch, SqsQueue, job_from_record
from tests.aws.conftest import Aws, Queues
from tests.charla.test_cli import charla
from tests.conftest import DATA_KEYS

SECRET_TEXT = "my private question about the merger"


async def dead_jobs(queues: Queues, aws: Aws) -> list[str]:
    """Two jobs the worker gave up on (error and attempts attached), in the dead-letter queue."""
    keys = KeyRing(*parse_keys(DATA_KEYS))
    queue = SqsQueue(queues.url, keys)
    for n in range(2):
        await queue.enqueue("answer", {"platform": "slack", "delivery_id": f"Ev{n}",
                                       "text": SECRET_TEXT},
                            dedup=("slack", f"Ev{n}{uuid.uuid4().hex[:6]}"))
    batch = SqsBatch(queue)
    messages = queues.receive(aws, visibility_s=60)
    for message in messages:
        job = job_from_record({"messageId": message["MessageId"], "body": message["Body"],
                               "receiptHandle": message["ReceiptHandle"],
                               "attributes": message["Attributes"]}, keys)
        await batch.fail(job, "platform: Slack chat.postMessage: channel_not_found")
        aws.client("sqs").delete_message(QueueUrl=queues.url,
                                         ReceiptHandle=message["ReceiptHandle"])
    return [m["Body"] for m in messages]


def test_failed_jobs_on_aws_are_listed_and_moved_back(aws: Aws, queues: Queues) -> None:
    bodies = asyncio.run(dead_jobs(queues, aws))
    # One more, as SQS moves a job itself after maxReceiveCount receives: no attributes.
    aws.client("sqs").send_message(QueueUrl=queues.dead_letters_url, MessageBody=bodies[0])

    listed = charla("jobs", "failed", "--sqs", queues.url, env={})
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 3
    assert sum("channel_not_found" in line and "1 attempt(s)" in line for line in lines) == 2
    assert sum("maxReceiveCount" in line for line in lines) == 1
    assert all("\tanswer\tslack:Ev" in line for line in lines)
    assert SECRET_TEXT not in listed.stdout  # sealed in the body, and never printed
    assert queues.count(aws, dead=True) == 3  # listing leaves them where they are

    first = lines[0].split("\t")[0]
    one = charla("jobs", "retry", "--sqs", queues.url, first, env={})
    assert (one.returncode, one.stdout.strip()) == (0, "1 job(s) queued again"), one.stderr
    assert queues.count(aws, dead=True) == 2 and queues.count(aws) == 1
    [back] = queues.receive(aws, visibility_s=0)
    assert back["Body"] in bodies  # the same body: the worker answers it (test_worker_handler)

    missing = charla("jobs", "retry", "--sqs", queues.url, "no-such-message", env={})
    assert missing.returncode == 1 and "no failed job" in missing.stdout
    assert queues.count(aws, dead=True) == 2  # what it read on the way is released

    rest = charla("jobs", "retry", "--sqs", "--all", env={"CHARLA_SQS_QUEUE_URL": queues.url})
    assert (rest.returncode, rest.stdout.strip()) == (0, "2 job(s) queued again")
    assert queues.count(aws, dead=True) == 0 and queues.count(aws) == 3
    assert charla("jobs", "failed", "--sqs", queues.url, env={}).stdout.strip() == (
        "no failed jobs")


def test_bad_requests_say_what_is_wrong(aws: Aws, queues: Queues) -> None:
    lone = aws.client("sqs").create_queue(QueueName=f"lone-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    done = charla("jobs", "failed", "--sqs", lone, env={})
    assert done.returncode == 2 and "no dead-letter queue" in done.stderr
    gone = charla("jobs", "failed", "--sqs", queues.url + "-gone", env={})
    assert gone.returncode == 2 and "GetQueueAttributes" in gone.stderr
    both = charla("jobs", "retry", "--sqs", queues.url, "m-1", "--all", env={})
    assert both.returncode == 2 and "or --all" in both.stderr
    no_url = charla("jobs", "failed", "--sqs", env={"CHARLA_SQS_QUEUE_URL": ""})
    assert no_url.returncode == 2 and "CHARLA_SQS_QUEUE_URL" in no_url.stderr
    assert all("Traceback" not in d.stderr for d in (done, gone, both, no_url))


async def test_the_queue_also_runs_on_boto3_behind_the_adapter(aws: Aws, queues: Queues) -> None:
    # The functions call SQS through shared/aws.py; boto3 fits the same interface, which is
    # what an operator's tools (and anyone who prefers the SDK in the functions) use.
    import boto3

    keys = KeyRing(*parse_keys(DATA_KEYS))
    queue = SqsQueue(queues.url, keys, client=lambda: Boto3Calls(boto3.client("sqs")))
    await queue.enqueue("answer", {"platform": "slack", "text": SECRET_TEXT},
                        dedup=("slack", "EvBOTO3"))
    [message] = queues.receive(aws)
    job = job_from_record({"messageId": message["MessageId"], "body": message["Body"],
                           "attributes": message["Attributes"]}, keys)
    assert (job.payload["text"], job.delivery) == (SECRET_TEXT, ("slack", "EvBOTO3"))
    assert queue.dead_letters().lookup() == queues.dead_letters_url
    await queue.close()
