"""What Lambda hands a function: API Gateway HTTP API (payload 2.0) and SQS events, a context.

The shapes follow AWS's documented examples: lower-case headers, ``rawPath`` and
``rawQueryString``, ``requestContext.http``, a body that is base64 when ``isBase64Encoded``;
SQS records as the event source mapping builds them from ReceiveMessage.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
API_ID = "r3pmxmplak"


def http_event(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
               *, base64_body: bool = False, query: str = "",
               source_ip: str = "198.51.100.24") -> dict[str, Any]:
    """An API Gateway HTTP API event for one request, as the function receives it."""
    now = time.time()
    sent = {"host": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
            "x-amzn-trace-id": f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}",
            "x-forwarded-for": source_ip, "x-forwarded-port": "443",
            "x-forwarded-proto": "https", "content-length": str(len(body))}
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    if not body:
        del sent["content-length"]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": sent,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
            "domainPrefix": API_ID,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": sent.get("user-agent", "")},
            "requestId": uuid.uuid4().hex[:16] + "=",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(
            part.split("=", 1) for part in query.split("&") if "=" in part)
    if body:
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    return event


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event the SQS event source mapping sends for messages from ReceiveMessage
    (asked with ``MessageSystemAttributeNames=["All"]``)."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    } for m in messages]}


@dataclass
class Context:
    """The context object Lambda passes a handler (the parts functions read)."""

    function_name: str = "charla-function"
    timeout_s: float = 60.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))
