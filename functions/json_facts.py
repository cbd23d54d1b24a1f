"""The fact check of a structured answer: the values of a JSON answer drawn from the passages.

A program that asks for JSON grounded in its collections (``response_format`` with
``collections``, functions/api/routes.py) gets values it will store or act on without a person
reading them, so each must say what the passages say, as a sentence shown to a person must
(functions/factcheck.py). The values are read from the answer's text, so an answer cut short
by ``max_tokens`` is read too: every string that is not a key, and every number. Keys are
the schema's words, not facts; so are the values the schema itself allows by name (``enum``,
``const``: "high", "EUR"), and the words a value says it does not know ("unknown", "N/A").

A JSON answer cannot be replaced by a quote, which would break its schema, nor shown in part:
it is checked whole, once complete, and one that states a fact no passage states is refused
(functions/pipeline.py, ``How.REFUSED``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from functions.factcheck import MAX_DIGITS, Verdict, check_values, fold

# A JSON string (its escapes kept), or a number; a string followed by ":" is a key.
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')
# What a value says when it holds no fact.
_NO_FACT = frozenset({"unknown", "none", "n/a", "na", "null", "yes", "no", "true", "false",
                      "desconocido", "desconocida", "ninguno", "ninguna", "si", "no consta"})


def _unescaped(raw: str) -> str:
    try:
        text: str = json.loads(f'"{raw}"')
    except ValueError:  # cut short inside an escape
        return raw
    return text


def _number(raw: str) -> str:
    """A JSON number as the fact check reads numbers: "27", "0.26" ("2.7e1" is 27); one too
    large or too small to write out ("1e99999") stays as written, a fact no passage states."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return raw
    if not -MAX_DIGITS <= value.adjusted() <= MAX_DIGITS:
        return raw
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def values(answer: str) -> Iterator[str]:
    """The values of ``answer``, JSON text whole or cut short: its strings that are not keys,
    and its numbers, each as text."""
    for m in _TOKEN.finditer(answer):
        if m.group(3) is not None:
            yield _number(m.group(3))
        elif m.group(2) is None:
            yield _unescaped(m.group(1))


def literals(schema: Any) -> frozenset[str]:
    """The values ``schema`` (a response format, or any part of one) names itself: those of
    every ``enum`` and ``const`` in it, folded."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "enum" and isinstance(value, list):
                    found |= {fold(str(v)) for v in value if isinstance(v, (str, int, float))}
                elif key == "const" and isinstance(value, (str, int, float)):
                    found.add(fold(str(value)))
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


class JsonFacts:
    """The fact check of a JSON answer, with :class:`functions.factcheck.FactGate`'s face: it
    reads the answer once it is whole, so nothing of it may be shown before
    (:attr:`checked` stays 0)."""

    def __init__(self, passages: Sequence[str], named: frozenset[str] = frozenset()) -> None:
        self._passages = list(passages)
        self._named = named
        self.checked = 0
        self.failed: Verdict | None = None

    def feed(self, text: str, *, whole: bool = False) -> Verdict | None:
        if self.failed is not None or not whole:
            return self.failed
        stated = [v for v in values(text)
                  if v.strip() and fold(v) not in self._named and fold(v) not in _NO_FACT]
        verdict = check_values(stated, self._passages)
        if not verdict.supported:
            self.failed = verdict
            return verdict
        self.checked = len(text)
        return None
