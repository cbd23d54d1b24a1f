"""``response_format``: a structured answer, checked before any engine sees it.

OpenAI's three shapes: ``{"type": "text"}`` (the default), ``{"type": "json_object"}`` (some
JSON object) and ``{"type": "json_schema", "json_schema": {"name", "schema", "strict",
"description"}}`` (JSON that fits the schema). The engine is constrained to the schema (llama.cpp
turns it into a grammar), so the answer parses and fits every time; what is checked here is
that the request is what it says: a name OpenAI would take and a schema that is JSON Schema,
with the part at fault named. The engine checks again what it cannot build a grammar for.
"""

from __future__ import annotations

import re
from typing import Any

from shared.errors import BadRequest

PARAM = "response_format"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
MAX_DEPTH = 32  # nesting of subschemas: deeper is a mistake or an attack, not a form
# Keywords whose value is one subschema, a list of them, or a map of names to them.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
        "propertyNames", "additionalItems", "unevaluatedProperties", "unevaluatedItems")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _bad(message: str) -> BadRequest:
    return BadRequest(message, PARAM)


def check_schema(schema: Any, where: str = "response_format.json_schema.schema",
                 depth: int = 0) -> None:
    """:class:`BadRequest` naming the place where ``schema`` is not JSON Schema."""
    if isinstance(schema, bool):
        return  # true and false are schemas
    if not isinstance(schema, dict):
        raise _bad(f"{where} must be a JSON Schema object")
    if depth > MAX_DEPTH:
        raise _bad(f"{where} is nested more than {MAX_DEPTH} levels deep")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if not all(isinstance(k, str) and k in _TYPES for k in kinds) or kind == []:
        raise _bad(f"{where}.type must be one of {', '.join(sorted(_TYPES))} (or a list)")
    required = schema.get("required")
    if required is not None and not (isinstance(required, list)
                                     and all(isinstance(r, str) for r in required)):
        raise _bad(f"{where}.required must be a list of property names")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise _bad(f"{where}.enum must be a list")
    if "$ref" in schema and not isinstance(schema["$ref"], str):
        raise _bad(f"{where}.$ref must be a string")
    for key in _ONE:
        if key in schema:
            sub = schema[key]
            if key == "items" and isinstance(sub, list):  # the older tuple form
                for i, item in enumerate(sub):
                    check_schema(item, f"{where}.items[{i}]", depth + 1)
            else:
                check_schema(sub, f"{where}.{key}", depth + 1)
    for key in _LIST:
        if key in schema:
            subs = schema[key]
            if not isinstance(subs, list) or not subs:
                raise _bad(f"{where}.{key} must be a non-empty list of schemas")
            for i, sub in enumerate(subs):
                check_schema(sub, f"{where}.{key}[{i}]", depth + 1)
    for key in _MAP:
        if key in schema:
            subs = schema[key]
            if not isinstance(subs, dict):
                raise _bad(f"{where}.{key} must be an object of schemas")
            for name, sub in subs.items():
                check_schema(sub, f"{where}.{key}.{name}", depth + 1)


def parse_response_format(value: Any) -> dict[str, Any] | None:
    """The structured answer asked for, as the engine takes it; None for plain text."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("'response_format' must be an object with a 'type'")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise _bad("response_format.type must be 'text', 'json_object' or 'json_schema'")
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise _bad("response_format.json_schema must be an object with 'name' and 'schema'")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _bad("response_format.json_schema.name must be 1 to 64 letters, digits, _ or -")
    if "schema" not in spec:
        raise _bad("response_format.json_schema.schema is required")
    check_schema(spec["schema"])
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _bad("response_format.json_schema.strict must be true or false")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad("response_format.json_schema.description must be a string")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": spec["schema"],
                                                   "strict": bool(strict)}}
