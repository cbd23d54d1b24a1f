"""A small client for the AWS JSON APIs the functions call: SQS, Secrets Manager, SSM.

The functions make a handful of AWS calls (read the secret, send a job, set a message's
visibility), all of them to JSON-protocol services: a POST to the service's endpoint with an
``X-Amz-Target`` header naming the action, a JSON body with the action's parameters (the same
names boto3 takes), signed with Signature Version 4. This module does exactly that with the
standard library. It exists for the cold start: in a fresh interpreter, reading one secret
(import, client, call) takes 152 ms through botocore and 37 ms through this module
(docs/benchmarks.md, "Cold start on Lambda"), of a webhook's 300 ms budget. boto3 remains what
operators and the tests use; the tests check this client's signatures against botocore's and
its calls against moto's server.

Credentials come from the environment, as Lambda provides them (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``); the region from ``AWS_REGION`` or
``AWS_DEFAULT_REGION``; the endpoint from ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``
(as botocore reads them) or the region's public name, which a VPC endpoint with private DNS
answers inside the VPC. Connections are kept between calls (and between invocations of a
container); one the far end closed meanwhile is replaced at once, without counting a try.
Calls are bounded in time and retried on network errors, throttling and 5xx answers. Neither
credentials nor bodies appear in errors or logs: an error carries the service, the action and
AWS's error code.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.errors import UpstreamError

log = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Service:
    """What tells one JSON-protocol service from another."""

    name: str  # the signing name and the endpoint's first label
    target: str  # X-Amz-Target is "<target>.<Action>"
    json_version: str  # application/x-amz-json-<version>
    endpoint_env: str  # AWS_ENDPOINT_URL_<this>


SQS = Service("sqs", "AmazonSQS", "1.0", "SQS")
SECRETS_MANAGER = Service("secretsmanager", "secretsmanager", "1.1", "SECRETS_MANAGER")
SSM = Service("ssm", "AmazonSSM", "1.1", "SSM")

# Error codes worth another try; the rest are answers.
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException",
                        "RequestThrottledException", "TooManyRequestsException",
                        "RequestThrottled", "RequestLimitExceeded", "SlowDown",
                        "ProvisionedThroughputExceededException", "InternalFailure",
                        "ServiceUnavailable", "InternalError", "KMSThrottlingException"})


class AwsError(UpstreamError):
    """A call that did not succeed: AWS's error ``code`` (or the network's), and whether
    another try later may succeed."""

    def __init__(self, service: str, action: str, code: str, *, status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(f"{service} {action}: {code}")
        self.service, self.action, self.code = service, action, code
        self.status, self.retryable = status, retryable


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never the secret key or the token
        return f"Credentials(access_key={self.access_key[:4]}…)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials:
        access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise AwsError("aws", "credentials", "NoCredentials: AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY are not set")
        return cls(access, secret, environ.get("AWS_SESSION_TOKEN") or None)


def region_from(environ: Mapping[str, str]) -> str:
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise AwsError("aws", "region", "NoRegion: AWS_REGION is not set")
    return region


def endpoint_for(service: Service, region: str, environ: Mapping[str, str]) -> str:
    """The service's endpoint: the environment's override, else the region's public name."""
    override = (environ.get(f"AWS_ENDPOINT_URL_{service.endpoint_env}")
                or environ.get("AWS_ENDPOINT_URL"))
    if override:
        return override.rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service.name}.{region}.{suffix}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(*, method: str, url: str, headers: Mapping[str, str], body: bytes,
         credentials: Credentials, region: str, service: str, now: float) -> dict[str, str]:
    """``headers`` plus the ``X-Amz-Date``, token and ``Authorization`` headers of a
    Signature Version 4 signature over every header given and the host."""
    parts = urlsplit(url)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    day = stamp[:8]
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = stamp
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
    canonical = "\n".join([
        method, parts.path or "/", query,
        "".join(f"{name}:{signed[name]}\n" for name in names),
        ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), day), region),
                      service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = dict(headers)
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = stamp
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    out["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out


class Client:
    """Calls one service's actions: ``client.call("SendMessage", QueueUrl=..., ...)``.

    Safe to share between threads: each call takes an idle connection (kept alive between
    calls) or opens one.
    """

    def __init__(self, service: Service, *, environ: Mapping[str, str] | None = None,
                 connect_timeout: float = 2.0, read_timeout: float = 5.0,
                 attempts: int = 3) -> None:
        env = os.environ if environ is None else environ
        self.service = service
        self.region = region_from(env)
        self.credentials = Credentials.from_env(env)
        self.endpoint = endpoint_for(service, self.region, env)
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AwsError(service.name, "endpoint", f"BadEndpoint: {self.endpoint}")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = parts.path or "/"
        self._url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.attempts = max(1, attempts)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        """The action's answer as a dict; :class:`AwsError` when it fails."""
        body = json.dumps(params, separators=(",", ":")).encode()
        for attempt in range(1, self.attempts + 1):
            try:
                return self._once(action, body)
            except AwsError as exc:
                if not exc.retryable or attempt == self.attempts:
                    raise
                # Full jitter on an exponential base, as AWS's SDKs do.
                delay = random.uniform(0, min(2.0, 0.05 * 2 ** attempt))  # noqa: S311
                log.info("%s; trying again in %.0f ms", exc, delay * 1000)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _once(self, action: str, body: bytes) -> dict[str, Any]:
        name = self.service.name
        headers = sign(method="POST", url=self._url,
                       headers={"Content-Type":
                                f"application/x-amz-json-{self.service.json_version}",
                                "X-Amz-Target": f"{self.service.target}.{action}"},
                       body=body, credentials=self.credentials, region=self.region,
                       service=name, now=time.time())
        conn, kept = self._connection()
        try:
            answer, data = self._exchange(conn, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if not kept or isinstance(exc, TimeoutError):
                raise AwsError(name, action, f"network: {type(exc).__name__}",
                               retryable=True) from None
            # A kept connection the far end had closed (a container thawed after a while):
            # sent again at once on a new one, without counting it as an attempt.
            conn, _ = self._connection(fresh=True)
            try:
                answer, data = self._exchange(conn, body, headers)
            except (OSError, http.client.HTTPException) as again:
                conn.close()
                raise AwsError(name, action, f"network: {type(again).__name__}",
                               retryable=True) from None
        if answer.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        if 200 <= answer.status < 300:
            try:
                result = json.loads(data) if data.strip() else {}
            except ValueError:
                raise AwsError(name, action, "BadAnswer: not JSON", status=answer.status
                               ) from None
            return result if isinstance(result, dict) else {}
        code = _error_code(data, answer.getheader("x-amzn-query-error"), answer.status)
        raise AwsError(name, action, code, status=answer.status,
                       retryable=answer.status >= 500 or code in _THROTTLED)

    def _exchange(self, conn: http.client.HTTPConnection, body: bytes,
                  headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        conn.request("POST", self._path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer, answer.read()

    def _connection(self, *, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was kept from an earlier call."""
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port,
                                               timeout=self.connect_timeout,
                                               context=_tls_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port,
                                              timeout=self.connect_timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise AwsError(self.service.name, "connect", f"network: {type(exc).__name__}",
                           retryable=True) from None
        if conn.sock is not None:
            conn.sock.settimeout(self.read_timeout)
        return conn, False


_tls: Any = None


def _tls_context() -> Any:
    """One TLS context per process (loading the CA store is the slow part)."""
    global _tls
    if _tls is None:
        import ssl

        _tls = ssl.create_default_context()
    return _tls


def _error_code(data: bytes, query_error: str | None, status: int) -> str:
    """AWS's error code: the JSON body's ``__type`` (after any ``#``), else the query-compatible
    header SQS adds, else the HTTP status."""
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if isinstance(document, dict):
        kind = document.get("__type") or document.get("code") or document.get("Code")
        if isinstance(kind, str) and kind:
            return kind.rsplit("#", 1)[-1]
    if query_error:
        return query_error.split(";", 1)[0]
    return f"HTTP{status}"
