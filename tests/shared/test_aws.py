"""shared/aws.py: signatures as botocore makes them, endpoints, errors, retries, bounded time.

The calls against moto's server are in tests/aws (the queue, the secrets); here the signer is
checked against botocore's own SigV4 signer, and the client's behaviour on a failing network
against a local HTTP server that misbehaves on purpose.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from shared import aws

NOW = 1_795_996_800.0  # 2026-11-30T00:00:00Z
KEYS = aws.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def botocore_authorization(url: str, headers: dict[str, str], body: bytes,
                           credentials: aws.Credentials, service: str,
                           monkeypatch: pytest.MonkeyPatch) -> str:
    """What botocore's signer writes for the same request at the same time."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: datetime.datetime.fromtimestamp(NOW, datetime.UTC))
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(BotoCredentials(credentials.access_key, credentials.secret_key,
                              credentials.token), service, "eu-west-1").add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("credentials", [KEYS, aws.Credentials("ASIAEXAMPLE", "c2VjcmV0",
                                                               "FwoGZXIvYXdzEBY-session")])
@pytest.mark.parametrize("url", ["https://sqs.eu-west-1.amazonaws.com/",
                                 "http://127.0.0.1:4566/"])
def test_the_signature_is_botocores(credentials: aws.Credentials, url: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"QueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q",
                       "MessageBody": "¿sí?  two  spaces"}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0",
               "X-Amz-Target": "AmazonSQS.SendMessage"}
    signed = aws.sign(method="POST", url=url, headers=headers, body=body,
                      credentials=credentials, region="eu-west-1", service="sqs", now=NOW)
    expected = botocore_authorization(url, headers | (
        {"X-Amz-Security-Token": credentials.token} if credentials.token else {}),
        body, credentials, "sqs", monkeypatch)
    assert signed["Authorization"] == expected
    assert signed["X-Amz-Date"] == "20261130T000000Z"
    assert signed.get("X-Amz-Security-Token") == credentials.token


def test_a_changed_body_or_target_changes_the_signature() -> None:
    def signature(body: bytes, target: str) -> str:
        return aws.sign(method="POST", url="https://sqs.eu-west-1.amazonaws.com/",
                        headers={"X-Amz-Target": target}, body=body, credentials=KEYS,
                        region="eu-west-1", service="sqs", now=NOW)["Authorization"]

    base = signature(b"{}", "AmazonSQS.SendMessage")
    assert signature(b'{"a":1}', "AmazonSQS.SendMessage") != base
    assert signature(b"{}", "AmazonSQS.DeleteQueue") != base


def test_endpoints_follow_the_environment_as_botocore_reads_it() -> None:
    assert aws.endpoint_for(aws.SQS, "eu-west-1", {}) == "https://sqs.eu-west-1.amazonaws.com"
    assert (aws.endpoint_for(aws.SECRETS_MANAGER, "cn-north-1", {})
            == "https://secretsmanager.cn-north-1.amazonaws.com.cn")
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000/",
           "AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:5001"}
    assert aws.endpoint_for(aws.SQS, "eu-west-1", env) == "http://127.0.0.1:5000"
    assert aws.endpoint_for(aws.SSM, "eu-west-1", env) == "http://127.0.0.1:5001"


def test_missing_credentials_or_region_are_named() -> None:
    with pytest.raises(aws.AwsError, match="AWS_ACCESS_KEY_ID"):
        aws.Client(aws.SQS, environ={"AWS_REGION": "eu-west-1"})
    with pytest.raises(aws.AwsError, match="AWS_REGION"):
        aws.Client(aws.SQS, environ={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})


def test_credentials_never_print() -> None:
    shown = repr(aws.Credentials("AKIDEXAMPLE", "the-secret-key", "the-session-token"))
    assert "the-secret-key" not in shown and "the-session-token" not in shown


class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, body) of the server's script."""

    protocol_version = "HTTP/1.1"  # keep-alive, as AWS endpoints do

    def do_POST(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length", "0"))
        server.seen.append({"target": self.headers["X-Amz-Target"],
                            "authorization": self.headers["Authorization"],
                            "body": self.rfile.read(length)})
        status, body = server.script.pop(0) if server.script else (200, b"{}")
        if status == 0:  # hang: only the client's read timeout can end the call in time
            if server.release.wait(10):  # the test is over: the client has long gone
                self.close_connection = True
                return
            status, body = 200, b"{}"  # an answer at last: a client that waited succeeds
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if server.drop_after_answer:  # an idle connection the far end closes, unannounced
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.seen, server.drop_after_answer = [], [], False
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def client_for(url: str, **kwargs: Any) -> aws.Client:
    return aws.Client(aws.SQS, environ={
        "AWS_ENDPOINT_URL": url, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "do-not-print-me"}, **kwargs)


def test_throttling_and_5xx_are_tried_again_and_errors_carry_the_code(scripted: Any) -> None:
    host, port = scripted.server_address
    scripted.script = [
        (400, b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}'),
        (503, b"{}"),
        (200, b'{"MessageId":"m-1"}'),
        (400, b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"no queue"}'),
    ]
    client = client_for(f"http://{host}:{port}")
    assert client.call("SendMessage", QueueUrl="q", MessageBody="hi") == {"MessageId": "m-1"}
    assert len(scripted.seen) == 3
    assert {s["target"] for s in scripted.seen} == {"AmazonSQS.SendMessage"}
    assert json.loads(scripted.seen[0]["body"]) == {"QueueUrl": "q", "MessageBody": "hi"}
    with pytest.raises(aws.AwsError) as refused:  # an answer, not tried again
        client.call("SendMessage", QueueUrl="q", MessageBody="secret text")
    assert len(scripted.seen) == 4
    assert (refused.value.code, refused.value.status, refused.value.retryable) == (
        "QueueDoesNotExist", 400, False)
    assert "secret text" not in str(refused.value) and "do-not-print-me" not in str(
        refused.value)
    client.close()


def test_a_closed_port_and_a_hung_server_fail_within_the_timeouts(scripted: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(aws.AwsError, match="network") as down:
        client_for(f"http://127.0.0.1:{closed}", attempts=2).call("GetQueueUrl", QueueName="q")
    assert down.value.retryable

    # The server holds both tries for 10 s, then answers 200: only the 0.3 s read timeout
    # (not the generous connect timeout, nor the server) can make the call fail, twice.
    host, port = scripted.server_address
    scripted.script = [(0, b""), (0, b"")]
    with pytest.raises(aws.AwsError, match="network: TimeoutError"):
        client_for(f"http://{host}:{port}", connect_timeout=60, read_timeout=0.3,
                   attempts=2).call("GetQueueUrl", QueueName="q")
    assert [s["target"] for s in scripted.seen] == ["AmazonSQS.GetQueueUrl"] * 2


def test_connections_are_kept_between_calls(scripted: Any) -> None:
    host, port = scripted.server_address
    client = client_for(f"http://{host}:{port}")
    for _ in range(3):
        client.call("GetQueueUrl", QueueName="q")
    assert len(client._idle) == 1  # one connection, reused
    client.close()
    assert client._idle == []


def test_a_kept_connection_the_far_end_dropped_is_replaced(scripted: Any) -> None:
    # A Lambda container thawed after minutes finds its kept connection closed: the call
    # goes out again at once on a new one, not counted as an attempt (one is all it has).
    scripted.drop_after_answer = True
    host, port = scripted.server_address
    client = client_for(f"http://{host}:{port}", attempts=1)
    for n in range(3):
        assert client.call("SendMessage", QueueUrl="q", MessageBody=str(n)) == {}
    assert [json.loads(s["body"])["MessageBody"] for s in scripted.seen] == ["0", "1", "2"]
    client.close()
