"""Requests and tokens per API client over time, from the audit log of exchanges.

The busiest clients (by tokens) get a series each; the rest are summed as one "others"
series, so the chart stays readable however many clients there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from shared.db import Database

Bucket = Literal["hour", "day"]
OTHERS = "others"

# One row per (bucket, client); a window with no exchange still gives one row, of NULLs, so
# the window's bounds come back either way.
_QUERY = (
    "WITH w AS (SELECT now() - make_interval(hours => %(hours)s) AS since, now() AS until)"
    " SELECT w.since, w.until, e.at, e.client, e.requests, e.prompt, e.completion FROM w"
    " LEFT JOIN LATERAL (SELECT date_trunc(%(bucket)s, created_at, 'UTC') AS at, client,"
    " count(*) AS requests, coalesce(sum(prompt_tokens), 0) AS prompt,"
    " coalesce(sum(completion_tokens), 0) AS completion"
    " FROM api_exchanges WHERE created_at >= w.since GROUP BY 1, 2) e ON true"
    " ORDER BY e.at, e.client"
)


@dataclass
class Series:
    """One client's totals, and its [requests, tokens] in each bucket that saw any."""

    client: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    points: dict[datetime, list[int]] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, at: datetime, requests: int, prompt: int, completion: int) -> None:
        self.requests += requests
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        point = self.points.setdefault(at, [0, 0])
        point[0] += requests
        point[1] += prompt + completion

    def merge(self, other: Series) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        for at, (requests, tokens) in other.points.items():
            point = self.points.setdefault(at, [0, 0])
            point[0] += requests
            point[1] += tokens

    def as_json(self) -> dict[str, Any]:
        return {"client": self.client, "requests": self.requests,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "tokens": self.tokens,
                "points": [{"at": at.isoformat(), "requests": r, "tokens": t}
                           for at, (r, t) in sorted(self.points.items())]}


async def usage(db: Database, *, bucket: Bucket, hours: int, top: int = 8) -> dict[str, Any]:
    """The series for the last ``hours`` hours, in UTC buckets of an hour or a day."""
    async with db.connection() as conn:
        cur = await conn.execute(_QUERY, {"hours": hours, "bucket": bucket})
        rows = await cur.fetchall()
    by_client: dict[str, Series] = {}
    for row in rows:
        if row["client"] is None:
            continue
        client = str(row["client"])
        series = by_client.setdefault(client, Series(client))
        series.add(cast(datetime, row["at"]), cast(int, row["requests"]),
                   cast(int, row["prompt"]), cast(int, row["completion"]))
    ranked = sorted(by_client.values(), key=lambda s: (-s.tokens, -s.requests, s.client))
    shown = ranked[:top]
    if len(ranked) > top:
        others = Series(OTHERS)
        for series in ranked[top:]:
            others.merge(series)
        shown.append(others)
    since, until = cast(datetime, rows[0]["since"]), cast(datetime, rows[0]["until"])
    return {"bucket": bucket, "hours": hours, "since": since.isoformat(),
            "until": until.isoformat(), "clients": len(by_client),
            "series": [s.as_json() for s in shown]}
