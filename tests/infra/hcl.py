"""Reading infra/terraform without a terraform binary: python-hcl2 parses each file into dicts.

Small helpers over that parse: every resource of a type across the root module and its modules,
blocks as lists, references stripped of ``${…}``, and a variable's number followed from a
module's input back to the root variable's default. Security group ingress, written any of
Terraform's three ways, comes out as one :class:`Ingress` shape so the firewall tests read the
same whichever way a rule was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"

_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=False)
_REF = re.compile(r"^\$\{(.*)\}$", re.DOTALL)
_LOWER_BOUND = re.compile(r"(?:>=|~>)\s*(\d+)\.(\d+)")

Block = dict[str, Any]


def parse_text(text: str) -> dict[str, Any]:
    """One file's (or snippet's) top-level blocks."""
    return hcl2.loads(text, serialization_options=_OPTIONS)


def tf_files(root: Path = TERRAFORM) -> list[Path]:
    return sorted(root.rglob("*.tf"))


@cache
def parsed(path: Path) -> dict[str, Any]:
    return parse_text(path.read_text())


def module_of(path: Path) -> str | None:
    """``network`` for infra/terraform/modules/network/main.tf; None for the root module."""
    if not path.is_relative_to(TERRAFORM):
        return None
    rel = path.relative_to(TERRAFORM).parts
    return rel[1] if len(rel) > 2 and rel[0] == "modules" else None


def blocks(body: Block, key: str) -> list[Block]:
    """A nested block as a list, whether it appears once or many times."""
    value = body.get(key, [])
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)]


def ref(value: Any) -> str:
    """``aws_security_group.functions.id`` for ``"${aws_security_group.functions.id}"``."""
    text = str(value)
    match = _REF.match(text)
    return match.group(1).strip() if match else text


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Item:
    """A resource, data source, variable or output with the file it is declared in."""

    path: Path
    type: str
    name: str
    body: Block

    @property
    def address(self) -> str:
        where = module_of(self.path)
        prefix = f"module.{where}." if where else ""
        return f"{prefix}{self.type}.{self.name}" if self.type else f"{prefix}{self.name}"


def items(section: str, kind: str | None = None,
          files: list[Path] | None = None) -> list[Item]:
    """Every ``resource``/``data`` of ``kind``, or every ``variable``/``output``/``module``."""
    found: list[Item] = []
    for path in files if files is not None else tf_files():
        for entry in parsed(path).get(section, []):
            for first, inner in entry.items():
                if section in ("resource", "data"):
                    if kind is not None and first != kind:
                        continue
                    for name, body in inner.items():
                        found.append(Item(path, first, name, body))
                else:
                    found.append(Item(path, "", first, inner))
    return found


def minimum_version(constraint: str) -> tuple[int, int]:
    """The lowest (major, minor) a version constraint such as ``">= 1.11.0, < 2.0"`` admits."""
    bounds = [(int(a), int(b)) for a, b in _LOWER_BOUND.findall(constraint)]
    if not bounds:
        raise ValueError(f"no lower bound in {constraint!r}")
    return max(bounds)


def required_terraform() -> str:
    """versions.tf's ``required_version``."""
    return str(parsed(TERRAFORM / "versions.tf")["terraform"][0]["required_version"])


def root_default(name: str) -> Any:
    for var in items("variable", files=[TERRAFORM / "variables.tf"]):
        if var.name == name:
            return var.body.get("default")
    raise KeyError(f"no root variable {name}")


def number(value: Any, path: Path) -> int | None:
    """A port or count as a number: literal, or a variable followed back to its default."""
    if isinstance(value, int):
        return value
    text = ref(value)
    if text.isdigit():
        return int(text)
    if not text.startswith("var."):
        return None
    var = text.removeprefix("var.")
    module = module_of(path)
    if module is None:
        default = root_default(var)
        return int(default) if default is not None else None
    for call in items("module", files=[TERRAFORM / "main.tf"]):
        if ref(call.body.get("source", "")) == f"./modules/{module}" and var in call.body:
            return number(call.body[var], TERRAFORM / "main.tf")
    for declared in items("variable", files=[p for p in tf_files()
                                             if module_of(p) == module]):
        if declared.name == var and declared.body.get("default") is not None:
            return int(declared.body["default"])
    return None


@dataclass(frozen=True)
class Ingress:
    """One way into a security group, however the rule was written."""

    address: str
    group: str  # the security group the rule opens, as a reference
    protocol: str
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...]
    source_groups: tuple[str, ...]
    prefix_lists: tuple[str, ...]

    def covers(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        if self.from_port is None or self.to_port is None:
            return True  # a port we cannot read counts as open, so a test fails rather than passes
        return self.from_port <= port <= self.to_port


def _group_name(reference: str) -> str:
    """``aws_security_group.functions`` for ``aws_security_group.functions.id``."""
    return reference.removesuffix(".id")


def ingress_rules(files: list[Path] | None = None) -> list[Ingress]:
    rules: list[Ingress] = []
    for rule in items("resource", "aws_vpc_security_group_ingress_rule", files):
        b = rule.body
        rules.append(Ingress(
            rule.address, _group_name(ref(b.get("security_group_id"))),
            str(b.get("ip_protocol", "")),
            number(b.get("from_port"), rule.path), number(b.get("to_port"), rule.path),
            tuple(str(c) for c in (b.get("cidr_ipv4"), b.get("cidr_ipv6")) if c),
            tuple(_group_name(ref(g)) for g in as_list(b.get("referenced_security_group_id"))),
            tuple(ref(p) for p in as_list(b.get("prefix_list_id")))))
    for rule in items("resource", "aws_security_group_rule", files):
        b = rule.body
        if b.get("type") != "ingress":
            continue
        sources = [ref(g) for g in as_list(b.get("source_security_group_id"))]
        if b.get("self") is True:
            sources.append(ref(b.get("security_group_id")))
        rules.append(Ingress(
            rule.address, _group_name(ref(b.get("security_group_id"))),
            str(b.get("protocol", "")),
            number(b.get("from_port"), rule.path), number(b.get("to_port"), rule.path),
            tuple(str(c) for c in as_list(b.get("cidr_blocks")) + as_list(
                b.get("ipv6_cidr_blocks"))),
            tuple(_group_name(g) for g in sources),
            tuple(ref(p) for p in as_list(b.get("prefix_list_ids")))))
    for group in items("resource", "aws_security_group", files):
        for inline in blocks(group.body, "ingress"):
            rules.append(Ingress(
                f"{group.address} (inline)", f"aws_security_group.{group.name}",
                str(inline.get("protocol", "")),
                number(inline.get("from_port"), group.path),
                number(inline.get("to_port"), group.path),
                tuple(str(c) for c in as_list(inline.get("cidr_blocks")) + as_list(
                    inline.get("ipv6_cidr_blocks"))),
                tuple(_group_name(ref(g)) for g in as_list(inline.get("security_groups"))),
                tuple(ref(p) for p in as_list(inline.get("prefix_list_ids")))))
    return rules


def policy_actions(document: Block) -> list[str]:
    """Every action an ``aws_iam_policy_document`` allows, across its statements."""
    actions: list[str] = []
    for statement in blocks(document, "statement"):
        if statement.get("effect", "Allow") == "Allow":
            actions.extend(str(a) for a in as_list(statement.get("actions")))
    return actions
