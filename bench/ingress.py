"""Slack ingress: signed events with distinct event_ids against /slack/events, with wrk.

Charla verifies, de-duplicates and queues each event in Postgres (one statement) before it
answers; slack-bolt's AsyncApp, behind the same server (uvicorn) and given the same events,
verifies, parses and acknowledges with an empty listener. Every request is a new event, signed
just before the run (Slack's 5-minute window). :func:`run` takes both servers through
:data:`ROUNDS` interleaved rounds and checks that Charla queued each accepted event once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import procs

EVENT = Path(__file__).resolve().parents[1] / "tests" / "events" / "slack" / \
    "app_mention_channel.json"
THREADS = 2
ROUNDS = 3
SECONDS = 10
CONNECTIONS = 32

LUA = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local lines = {}
local i = 0
function init(args)
  for line in io.lines(args[1] .. "." .. id) do lines[#lines + 1] = line end
end
function request()
  i = i + 1
  if i > #lines then i = 1 end
  local ts, sig, body = lines[i]:match("^(%d+)\t([^\t]+)\t(.*)$")
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["X-Slack-Request-Timestamp"] = ts, ["X-Slack-Signature"] = sig}, body)
end
"""


@dataclass
class Ingress:
    target: str
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    requests: int


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def write_requests(path: Path, secret: str, count: int) -> None:
    """``count`` distinct signed app_mention events per wrk thread, one per line."""
    base: dict[str, Any] = json.loads(EVENT.read_text())
    key = secret.encode()
    for thread in range(THREADS):
        with open(f"{path}.{thread}", "w") as out:
            stamp = str(int(time.time()))
            for n in range(count):
                base["event_id"] = f"Ev{uuid.uuid4().hex[:16].upper()}"
                base["event"]["ts"] = base["event"]["event_ts"] = f"1718{thread}{n:08d}.000100"
                body = json.dumps(base, separators=(",", ":"))
                sig = hmac.new(key, f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
                out.write(f"{stamp}\tv0={sig}\t{body}\n")


def run_wrk(url: str, requests: Path, *, connections: int, seconds: int) -> Ingress:
    script = requests.with_suffix(".lua")
    script.write_text(LUA)
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(script), url + "/slack/events", "--", str(requests)],
        capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    return parse_wrk(url, out)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(target: str, out: str) -> Ingress:
    pct = {int(p): _ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$",
                                                      out, re.M)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Ingress(target, rate, pct[50], pct[90], pct[99], int(bad.group(1)) if bad else 0,
                   total)


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["ingress"]``: Slack events against Charla's /slack/events and slack-bolt's
    AsyncApp, interleaved."""
    print("== Slack ingress: Charla against slack-bolt (wrk)", flush=True)
    if not wrk_available():
        print("   wrk not installed (apt-get install wrk): skipped", flush=True)
        return
    secret = "bench-signing-" + secrets.token_hex(12)
    pg, url = procs.database(logdir, "pg-ingress")
    results: dict[str, list[dict[str, Any]]] = {"slack_bolt": [], "charla": []}
    try:
        with ExitStack() as stack:
            charla = stack.enter_context(procs.functions_app(
                keys, "http://127.0.0.1:9", url, secrets.token_urlsafe(48), logdir,
                SLACK_SIGNING_SECRET=secret, SLACK_BOT_TOKEN="xoxb-bench",
                SLACK_API_URL="http://127.0.0.1:9"))
            port = procs.free_port()
            stack.enter_context(procs.running(
                [sys.executable, "-m", "bench.bolt_app", str(port)],
                f"http://127.0.0.1:{port}/healthz", env={"SLACK_SIGNING_SECRET": secret},
                log=logdir / "bolt.log"))
            targets = {"slack_bolt": f"http://127.0.0.1:{port}", "charla": charla}
            for _ in range(ROUNDS):
                for name, target in targets.items():
                    requests = logdir / "slack-events"
                    write_requests(requests, secret, 50_000)
                    result = run_wrk(target, requests, connections=CONNECTIONS,
                                     seconds=SECONDS)
                    results[name].append(asdict(result))
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        out["ingress"] = {"runs": results, "jobs_queued": row[0] if row else 0,
                          "charla_2xx": sum(r["requests"] - r["non_2xx"]
                                            for r in results["charla"])}
    finally:
        pg.stop()


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"Slack ingress, wrk -t2 -c{CONNECTIONS} -d{SECONDS}s, "
             f"{ROUNDS} interleaved rounds, every request a new signed event:", "",
             "| server | requests/s (median) | p50 | p90 | p99 (median) | p99 (worst) | non-2xx |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in data["runs"].items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")}
        lines.append(f"| {name} | {med['requests_per_s']:.0f} | {med['p50_ms']:.1f} ms | "
                     f"{med['p90_ms']:.1f} ms | {med['p99_ms']:.1f} ms | "
                     f"{max(r['p99_ms'] for r in runs):.1f} ms | "
                     f"{sum(r['non_2xx'] for r in runs)} |")
    lines.append(f"\nCharla answered {data['charla_2xx']} events with 2xx and queued "
                 f"{data['jobs_queued']} jobs (each accepted event queued exactly once).")
    return lines
