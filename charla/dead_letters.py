"""``charla jobs failed --sqs`` and ``charla jobs retry --sqs``: failed jobs of a deployment on AWS.

On AWS a job the worker gives up on goes to the dead-letter queue named by the SQS queue's
redrive policy, with its error and attempts as message attributes; so does a job SQS moves there
itself after ``maxReceiveCount`` receives (without them). These commands list those jobs (never
what people wrote: it travels sealed) and move them back to the queue: the same body in a new
message, as SQS's own redrive does, which the worker answers once (shared/sqs_queue.py keys its
de-duplication on the body's send id, not on the message id).

They run on an operator's machine with its own AWS credentials, through boto3 (profiles, SSO,
roles), not the functions' small client (shared/aws.py), which reads credentials from the
environment only.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import CharlaError

MOVE_VISIBILITY_S = 60  # how long a message being moved stays hidden from other readers


class DeadLetterError(CharlaError):
    """The queue or its dead-letter queue cannot be reached or read."""


@dataclass(frozen=True)
class DeadJob:
    message_id: str
    kind: str
    delivery: str  # platform:delivery id, or "-"
    attempts: str
    # When it was sent to the dead-letter queue; for a job SQS moved there itself, when it
    # was first queued (SQS keeps the original time).
    sent_at: datetime | None
    error: str


class DeadLetters:
    """The dead-letter queue of ``queue_url``, found through its redrive policy."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sqs")
        self.sqs = client
        self.queue_url = queue_url
        self.url = self._dead_letter_url()

    def _dead_letter_url(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
            policy = attributes.get("RedrivePolicy")
            if not policy:
                raise DeadLetterError(f"{self.queue_url} has no dead-letter queue (no redrive"
                                      " policy): failed jobs were dropped")
            *_, account, name = str(json.loads(policy)["deadLetterTargetArn"]).split(":")
            url: str = self.sqs.get_queue_url(QueueName=name,
                                              QueueOwnerAWSAccountId=account)["QueueUrl"]
        except (BotoCoreError, ClientError) as exc:
            raise DeadLetterError(f"cannot read the queue {self.queue_url}: {_code(exc)}"
                                  ) from None
        return url

    def _receive(self, visibility_s: int) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            messages: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=visibility_s,
                MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0).get("Messages", [])
        except (BotoCoreError, ClientError) as exc:
            raise DeadLetterError(f"cannot read the dead-letter queue: {_code(exc)}") from None
        return messages

    def peek(self, limit: int) -> list[DeadJob]:
        """Up to ``limit`` jobs, newest first, left where they are (read with no hiding)."""
        seen: dict[str, dict[str, Any]] = {}
        quiet = 0
        while len(seen) < limit and quiet < 3:  # SQS answers a sample: read until nothing new
            got = self._receive(0)
            new = [m for m in got if m["MessageId"] not in seen]
            quiet = quiet + 1 if not new else 0
            for message in new:
                seen[message["MessageId"]] = message
        jobs = [_dead_job(m) for m in seen.values()]
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(jobs, key=lambda j: j.sent_at or epoch, reverse=True)[:limit]

    def move_back(self, message_id: str | None = None) -> int:
        """Move one job (by its message id in the dead-letter queue), or all of them, back to
        the queue; how many moved. Messages read on the way and not moved are released."""
        from botocore.exceptions import BotoCoreError, ClientError

        moved, passed = 0, []
        try:
            while True:
                got = self._receive(MOVE_VISIBILITY_S)
                if not got:
                    break
                for message in got:
                    if message_id is not None and message["MessageId"] != message_id:
                        passed.append(message)
                        continue
                    # Sent first, then deleted: a failure in between leaves a copy, never a
                    # loss (the worker runs the body once; posts are claimed in the outbox).
                    self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["Body"])
                    self.sqs.delete_message(QueueUrl=self.url,
                                            ReceiptHandle=message["ReceiptHandle"])
                    moved += 1
                if message_id is not None and moved:
                    break
        except (BotoCoreError, ClientError) as exc:
            raise DeadLetterError(f"moving jobs back failed after {moved}: {_code(exc)}"
                                  ) from None
        finally:
            for message in passed:
                # Released now; if that fails, visible again after MOVE_VISIBILITY_S anyway.
                with contextlib.suppress(BotoCoreError, ClientError):
                    self.sqs.change_message_visibility(
                        QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=0)
        return moved


def _dead_job(message: dict[str, Any]) -> DeadJob:
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        body = None
    kind, delivery = "(not a job)", "-"
    if isinstance(body, dict):
        kind = str(body.get("kind", kind))
        keys = body.get("delivery")
        if isinstance(keys, list) and len(keys) >= 2:
            delivery = f"{keys[0]}:{keys[1]}"
    attributes = message.get("MessageAttributes", {})
    system = message.get("Attributes", {})
    sent = system.get("SentTimestamp")
    error = attributes.get("error", {}).get("StringValue")
    attempts = attributes.get("attempts", {}).get("StringValue")
    return DeadJob(
        message_id=str(message["MessageId"]), kind=kind, delivery=delivery,
        attempts=str(attempts or "?"),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        error=str(error or "moved here by SQS after the queue's maxReceiveCount receives"))


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__
