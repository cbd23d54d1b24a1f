"""Split an answer into messages that fit a platform's limit, without breaking words or code.

Discord takes 2,000 characters a message, Telegram 4,096, a Slack section block 3,000, each
counted its own way (``length``). A split prefers a paragraph break, then a line break, then
a space; only a single word longer than a whole message is cut. A split inside a fenced code
block closes the fence at the end of the part and opens it again, with its language, at the
start of the next, so every part renders as code.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Length = Callable[[str], int]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CLOSE = "\n```"


def _open_fence(text: str) -> str | None:
    """The fence line of a code block left open at the end of ``text``, else None."""
    opened: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if opened is None:
            opened = line.strip()
        elif line.strip().startswith(opened[:3]) and not match.group(2).strip():
            opened = None
    return opened


def _fitting(text: str, room: int, length: Length) -> int:
    """How many characters of ``text`` fit in ``room`` units (length is monotonic)."""
    if length(text) <= room:
        return len(text)
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if length(text[:mid]) <= room:
            low = mid
        else:
            high = mid - 1
    return low


def _break(text: str, end: int, start: int) -> int:
    """Where to cut ``text`` at or before ``end`` (not before ``start``): after a paragraph
    break, a line break or a space found in the last half of the part; else at ``end``."""
    floor = max(start + 1, end // 2)
    for sep in ("\n\n", "\n", " "):
        at = text.rfind(sep, floor, end)
        if at != -1:
            return at + len(sep)
    return end


def split_message(text: str, limit: int, length: Length = len) -> list[str]:
    """``text`` as parts of at most ``limit`` units each (a single part when it fits)."""
    if limit < 40:
        raise ValueError("a message limit under 40 leaves no room to split sensibly")
    parts: list[str] = []
    reopen = ""
    rest = text
    while True:
        current = reopen + rest
        if length(current) <= limit:
            if current.strip():
                parts.append(current.rstrip())
            return parts or [""]
        end = _fitting(current, limit - length(_CLOSE), length)
        cut = _break(current, end, len(reopen))
        head, tail = current[:cut], current[cut:]
        fence = _open_fence(head)
        if fence is not None:
            parts.append(head.rstrip("\n") + _CLOSE)
            reopen = fence + "\n"
            rest = tail.lstrip("\n")
        else:
            parts.append(head.rstrip())
            reopen = ""
            rest = tail.lstrip()
        if not rest:
            return parts
