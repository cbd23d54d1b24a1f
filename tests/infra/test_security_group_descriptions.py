"""Security group and rule descriptions, checked against EC2's character set.

The AWS provider passes descriptions through unchecked, so a character EC2 refuses (an
apostrophe, say) passes ``terraform plan`` and fails ``apply`` halfway. EC2's rules:

- a group's description (CreateSecurityGroup): up to 255 characters of a-z, A-Z, 0-9, spaces
  and ``._-:/()#,@[]+=&;{}!$*``
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html);
- a rule's description: the same without ``&`` where the rule's peer is a security group
  (UserIdGroupPair) or a prefix list (PrefixListId); an address range (IpRange) takes ``&``
  too. A rule's description lands in whichever of these its peer is, so every rule is held to
  the narrowest set
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_UserIdGroupPair.html,
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_PrefixListId.html).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.hcl import blocks, items, parse_text

GROUP_CHARS = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")
RULE_CHARS = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]*")
MAX_LENGTH = 255
RULE_TYPES = ("aws_security_group_rule", "aws_vpc_security_group_ingress_rule",
              "aws_vpc_security_group_egress_rule")
# The one interpolation a description may hold: the deployment's name, which variables.tf
# validates as lowercase letters, digits and hyphens (at most 21 characters).
_NAME = "${var.name}"
_NAME_STANDS_FOR = "n" * 21


@dataclass(frozen=True)
class Description:
    address: str
    text: str
    allowed: re.Pattern[str]


def _descriptions(files: list[Path] | None = None) -> list[Description]:
    found: list[Description] = []
    for group in items("resource", "aws_security_group", files):
        if "description" in group.body:
            found.append(Description(group.address, str(group.body["description"]),
                                     GROUP_CHARS))
        for kind in ("ingress", "egress"):
            for n, inline in enumerate(blocks(group.body, kind)):
                if "description" in inline:
                    found.append(Description(f"{group.address} {kind}[{n}]",
                                             str(inline["description"]), RULE_CHARS))
    for kind in RULE_TYPES:
        for rule in items("resource", kind, files):
            if "description" in rule.body:
                found.append(Description(rule.address, str(rule.body["description"]),
                                         RULE_CHARS))
    return found


def _problem(description: Description) -> str | None:
    """Why EC2 would refuse the description, or None."""
    text = description.text.replace(_NAME, _NAME_STANDS_FOR)
    if "${" in text:
        return "holds an interpolation whose characters cannot be checked here"
    if len(text) > MAX_LENGTH:
        return f"is {len(text)} characters long (EC2 takes {MAX_LENGTH})"
    if not description.allowed.fullmatch(text):
        bad = sorted({c for c in text if not description.allowed.fullmatch(c)})
        return f"holds {bad}, which EC2 refuses there"
    return None


def test_every_security_group_and_rule_description_is_one_ec2_accepts() -> None:
    descriptions = _descriptions()
    # Every group and every rule of modules/security has one: the walk must have found them.
    assert len([d for d in descriptions if d.allowed is GROUP_CHARS]) >= 6
    assert len([d for d in descriptions if d.allowed is RULE_CHARS]) >= 12
    problems = [f"{d.address}: {d.text!r} {p}" for d in descriptions
                if (p := _problem(d)) is not None]
    assert problems == []


@pytest.mark.parametrize(("snippet", "refused"), [
    ('resource "aws_security_group" "g" { description = "the platforms\' APIs" }', True),
    ('resource "aws_security_group" "g" { description = "Slack & Discord" }', False),
    ('resource "aws_vpc_security_group_egress_rule" "r" { description = "Slack & Discord" }',
     True),
    ('resource "aws_security_group_rule" "r" { description = "caf\u00e9" }', True),
    ('resource "aws_security_group" "g" {\n  ingress {\n    description = "it\'s"\n  }\n}', True),
    ('resource "aws_security_group" "g" { description = "${var.name}: HTTPS (443)" }', False),
    ('resource "aws_security_group" "g" { description = "${var.other}" }', True),
    (f'resource "aws_security_group" "g" {{ description = "{"x" * 256}" }}', True),
])
def test_the_check_refuses_what_ec2_refuses(snippet: str, refused: bool,
                                             tmp_path: Path) -> None:
    path = tmp_path / "main.tf"
    path.write_text(snippet)
    assert parse_text(snippet)  # the snippet is valid HCL
    found = _descriptions([path])
    assert len(found) == 1
    assert (_problem(found[0]) is not None) is refused
