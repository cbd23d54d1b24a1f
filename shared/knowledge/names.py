"""The one rule for a collection's name, checked at every edge before the database sees it.

The database refuses a bad name too (the CHECK on ``collections.name`` in
shared/migrations/0003_knowledge.sql), but only as a driver error: a 500 over HTTP, a
traceback on the command line. Every edge (``/v1/documents``, a chat request's
``collections``, ``charla ingest | grant | revoke | forget | reindex``) calls
:func:`collection_name` first, so the caller is told the rule instead. This module imports
no driver: the model server's gateway parses chat requests with it.
"""

from __future__ import annotations

import re

from shared.errors import BadRequest

# The same pattern as the CHECK constraint; tests/shared/knowledge/test_names.py asks
# Postgres itself whether both agree.
_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_LENGTH = 63
RULE = (f"1 to {MAX_LENGTH} characters: lower-case letters a-z, digits, '-' and '_', "
        "starting with a letter or a digit")
_SHOWN = 40  # characters of a refused name repeated back: enough to recognise it


class InvalidCollectionName(BadRequest):
    """A collection name that breaks :data:`RULE` (a 400 over HTTP; exit 2 from ``charla``)."""


def is_collection_name(name: object) -> bool:
    """Whether ``name`` is a string the database would take as a collection's name."""
    # fullmatch, not match with "$": Python's "$" also matches before a final newline.
    return isinstance(name, str) and _PATTERN.fullmatch(name) is not None


def collection_name(name: object, param: str = "collection") -> str:
    """``name``, if it follows :data:`RULE`; :class:`InvalidCollectionName` saying the rule
    otherwise (``param``: the request field at fault, for OpenAI's error shape)."""
    if isinstance(name, str) and is_collection_name(name):
        return name
    shown = repr(name[:_SHOWN] + ("..." if len(name) > _SHOWN else "")) if isinstance(
        name, str) else "a non-string"
    raise InvalidCollectionName(f"{shown} is not a valid collection name: use {RULE}", param)
