"""Failed jobs on AWS: the SQS queue's dead-letter queue, read and moved back.

A job the worker gives up on goes to the dead-letter queue named by the queue's redrive policy,
with its error and attempts as message attributes (shared/queue/sqs.py); so does a job SQS
moves there itself after ``maxReceiveCount`` receives (without them). :class:`DeadLetters`
lists those jobs (never what people wrote: it travels sealed) and moves them back to the
queue: the same body in a new message, as SQS's own redrive does, which the worker answers
once (its de-duplication keys on the body's send id, not on the message id).

It calls SQS through a client with ``call(action, **params)``: the functions' own
(shared/aws.py) in the admin view, boto3 behind an adapter in ``charla jobs --sqs``
(charla/dead_letters.py), which runs with an operator's own credentials. Calls block: async
callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.aws import AwsError
from shared.errors import StorageError

MOVE_VISIBILITY_S = 60  # how long a message being moved stays hidden from other readers


class Calls(Protocol):
    def call(self, action: str, **params: Any) -> dict[str, Any]:
        """One SQS action's answer; :class:`AwsError` when it fails."""


class DeadLetterError(StorageError):
    """The queue or its dead-letter queue cannot be reached, read or written."""


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
    """The dead-letter queue of ``queue_url``, found through its redrive policy (once)."""

    def __init__(self, client: Calls, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url
        self._url: str | None = None

    def _sqs(self, action: str, **params: Any) -> dict[str, Any]:
        try:
            return self._client.call(action, **params)
        except AwsError as exc:
            raise DeadLetterError(f"SQS {action}: {exc.code}") from None

    def lookup(self) -> str | None:
        """The dead-letter queue's URL (asked once); None when the queue has no redrive
        policy."""
        if self._url is None:
            attributes = self._sqs("GetQueueAttributes", QueueUrl=self.queue_url,
                                   AttributeNames=["RedrivePolicy"]).get("Attributes", {})
            policy = attributes.get("RedrivePolicy")
            if not policy:
                return None
            *_, account, name = str(json.loads(policy)["deadLetterTargetArn"]).split(":")
            self._url = str(self._sqs("GetQueueUrl", QueueName=name,
                                      QueueOwnerAWSAccountId=account)["QueueUrl"])
        return self._url

    @property
    def url(self) -> str:
        url = self.lookup()
        if url is None:
            raise DeadLetterError(f"{self.queue_url} has no dead-letter queue (no redrive"
                                  " policy): failed jobs were dropped")
        return url

    def count(self) -> int:
        """About how many jobs wait there (SQS's approximate counts)."""
        attributes = self._sqs("GetQueueAttributes", QueueUrl=self.url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        ]).get("Attributes", {})
        return sum(int(v) for v in attributes.values())

    def _receive(self, visibility_s: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._sqs(
            "ReceiveMessage", QueueUrl=self.url, MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_s, MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        return messages

    def peek(self, limit: int) -> list[DeadJob]:
        """Up to ``limit`` jobs, newest first, left where they are (read with no hiding)."""
        seen: dict[str, dict[str, Any]] = {}
        quiet = 0
        while len(seen) < limit and quiet < 3:  # SQS answers a sample: read until nothing new
            new = [m for m in self._receive(0) if m["MessageId"] not in seen]
            quiet = quiet + 1 if not new else 0
            for message in new:
                seen[message["MessageId"]] = message
        jobs = [_dead_job(m) for m in seen.values()]
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(jobs, key=lambda j: j.sent_at or epoch, reverse=True)[:limit]

    def move_back(self, message_id: str | None = None) -> int:
        """Move one job (by its message id in the dead-letter queue), or all of them, back to
        the queue; how many moved. Messages read on the way and not moved are released."""
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
                    self._sqs("SendMessage", QueueUrl=self.queue_url,
                              MessageBody=message["Body"])
                    self._sqs("DeleteMessage", QueueUrl=self.url,
                              ReceiptHandle=message["ReceiptHandle"])
                    moved += 1
                if message_id is not None and moved:
                    break
        except DeadLetterError as exc:
            raise DeadLetterError(f"moving jobs back stopped after {moved}: {exc}") from None
        finally:
            for message in passed:
                # Released now; if that fails, visible again after MOVE_VISIBILITY_S anyway.
                with contextlib.suppress(DeadLetterError):
                    self._sqs("ChangeMessageVisibility", QueueUrl=self.url,
                              ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
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
    sent = message.get("Attributes", {}).get("SentTimestamp")
    error = attributes.get("error", {}).get("StringValue")
    attempts = attributes.get("attempts", {}).get("StringValue")
    return DeadJob(
        message_id=str(message["MessageId"]), kind=kind, delivery=delivery,
        attempts=str(attempts or "?"),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        error=str(error or "moved here by SQS after the queue's maxReceiveCount receives"))
