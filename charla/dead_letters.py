"""``charla jobs --sqs``: the dead-letter queue (shared/queue/dead_letters.py) from an
operator's machine.

The functions call AWS through shared/aws.py, which reads credentials from the environment only,
as Lambda provides them. An operator's machine has profiles, SSO and roles: boto3 finds those,
so the command line calls SQS through boto3, adapted to the same ``call(action, **params)``.
"""

from __future__ import annotations

import re
from typing import Any

from shared.aws import AwsError
from shared.queue.dead_letters import DeadLetters


class Boto3Calls:
    """``call("ReceiveMessage", **params)`` on a boto3 client, its errors as :class:`AwsError`:
    shared/aws.py's interface over boto3 (``SqsQueue(client=...)`` takes it too)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def close(self) -> None:
        self.client.close()

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()  # SendMessage -> send_message
        try:
            answer: dict[str, Any] = getattr(self.client, method)(**params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            raise AwsError("sqs", action, code) from None
        except BotoCoreError as exc:
            raise AwsError("sqs", action, type(exc).__name__) from None
        return answer


def dead_letters(queue_url: str) -> DeadLetters:
    import boto3

    return DeadLetters(Boto3Calls(boto3.client("sqs")), queue_url)
