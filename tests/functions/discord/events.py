"""Discord interaction samples from tests/events/discord/ (made-up ids and tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events" / "discord"


def raw_event(name: str) -> bytes:
    """The sample's bytes, exactly as Discord would POST them."""
    return (EVENTS / f"{name}.json").read_bytes()


def event(name: str) -> dict[str, Any]:
    """The sample parsed, a fresh copy each call so tests may change it."""
    data: dict[str, Any] = json.loads(raw_event(name))
    return data
