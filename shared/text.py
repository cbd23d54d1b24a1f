"""Client text that is valid JSON but not Unicode: lone UTF-16 surrogates.

JSON lets a string name half of a surrogate pair on its own (``"\\ud800"``), and Python's json
module, which decodes bytes with ``surrogatepass``, also lets the three UTF-8-like bytes of one
through (``ED A0 80``). Python keeps such a ``str``, but nothing can encode it as UTF-8 again:
the token estimate, Postgres and the engine each fail on it, far from the edge, as a 500. So it
is dealt with where JSON is parsed (:func:`shared.openai_schema.parse_json_object`), once:
the API refuses it with the field named (:func:`find_surrogate`), a webhook's text is
repaired (:func:`repair_surrogates`) so the rest of the message is still answered.

A well-formed pair (``"\\ud83d\\ude00"``, an emoji as ``json.dumps`` escapes it) is joined
into one character by the parser and is not a surrogate any more.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar, cast

T = TypeVar("T")

REPLACEMENT = "\ufffd"
_LONE = re.compile("[\ud800-\udfff]")
# What in a UTF-8 body can decode to a surrogate: an escape \uD800-\uDFFF, or the bytes ED A0-BF.
_MAYBE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SHOWN = 40  # characters of a key shown in a path: enough to find it, never a whole body


def may_hold_surrogates(raw: bytes) -> bool:
    """False when the JSON text ``raw`` cannot hold a lone surrogate, so that the common
    body is not walked. UTF-16 and UTF-32 bodies (a NUL among the first bytes, as json's own
    detection reads them) are always walked."""
    return b"\x00" in raw[:4] or _MAYBE.search(raw) is not None


def _shown(key: str) -> str:
    """A key as a path shows it: cut short, its surrogates written as escapes (the path goes
    back to the client in an error, and must itself encode)."""
    short = key[:_SHOWN] + ("..." if len(key) > _SHOWN else "")
    return _LONE.sub(lambda m: f"\\u{ord(m.group()):04x}", short)


def find_surrogate(value: Any) -> tuple[str, str] | None:
    """Where the first string or key of a parsed JSON value that holds a lone surrogate is:
    its top-level field and its path (``("messages", "messages[0].content")``); None when
    there is none.

    A loop, not recursion: a body nested as deep as the parser allows must not overflow here.
    """
    stack: list[tuple[Any, str, str]] = [(value, "", "")]
    while stack:
        item, field, path = stack.pop()
        if isinstance(item, str):
            if _LONE.search(item):
                return field, path
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                where = f"{path}.{_shown(key)}" if path else _shown(key)
                # A key that holds one is reported itself: pushed in its value's place.
                children.append((key if _LONE.search(key) else child, field or where, where))
            stack.extend(reversed(children))  # popped in document order
        elif isinstance(item, list):
            stack.extend((child, field, f"{path}[{i}]")
                         for i, child in reversed(list(enumerate(item))))
    return None


def repair_surrogates(value: T) -> T:
    """``value`` with every lone surrogate in its strings and keys replaced by U+FFFD, the
    character decoders use for what they cannot read. Containers are repaired in place."""
    if isinstance(value, str):
        return cast(T, _LONE.sub(REPLACEMENT, value))
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            pairs = list(item.items())
            item.clear()
            for key, child in pairs:
                item[_LONE.sub(REPLACEMENT, key)] = _repaired(child, stack)
        elif isinstance(item, list):
            item[:] = [_repaired(child, stack) for child in item]
    return value


def _repaired(child: Any, stack: list[Any]) -> Any:
    """A string repaired now; a container left for the loop of :func:`repair_surrogates`."""
    if isinstance(child, str):
        return _LONE.sub(REPLACEMENT, child)
    if isinstance(child, dict | list):
        stack.append(child)
    return child
