"""Slack ingress: signed events with distinct event_ids against /slack/events, with wrk.

Charla verifies, de-duplicates and queues each event in Postgres (one statement) before it
answers; slack-bolt's AsyncApp, behind the same server (uvicorn) and given the same events,
verifies, parses and acknowledges with an empty listener. Every request is a new event, signed
just before the run (Slack's 5-minute window).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENT = Path(__file__).resolve().parents[1] / "tests" / "events" / "slack" / \
    "app_mention_channel.json"
THREADS = 2

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
