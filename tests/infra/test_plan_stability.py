"""What keeps a plan honest: pinned images, references over module-level depends_on, ARNs built
from the partition, and a Terraform version that has what the configuration uses.
"""

from __future__ import annotations

import re
from typing import Any

from tests.infra.hcl import (
    TERRAFORM,
    blocks,
    items,
    minimum_version,
    module_of,
    ref,
    required_terraform,
    root_default,
    tf_files,
)

_ARN_LITERAL = re.compile(r"\barn:aws(-[a-z]+)*:")
# The S3 backend's use_lockfile came in Terraform 1.10 as an experiment and is generally
# available from 1.11 (https://developer.hashicorp.com/terraform/language/v1.11.x/upgrade-guides).
LOCKFILE_SINCE = (1, 11)


def _module_call(name: str) -> dict[str, Any]:
    for call in items("module", files=[TERRAFORM / "main.tf"]):
        if call.name == name:
            return call.body
    raise AssertionError(f"main.tf does not call module {name}")


def test_no_arn_names_its_partition_literally() -> None:
    # aws-cn and aws-us-gov accounts have other partitions: every ARN takes it from
    # data.aws_partition, so the modules deploy there too.
    found = [f"{path.relative_to(TERRAFORM)}:{n}: {line.strip()}"
             for path in tf_files()
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if _ARN_LITERAL.search(line)]
    assert found == []


def test_the_required_version_has_what_the_configuration_uses() -> None:
    required = required_terraform()
    assert minimum_version(required) >= (1, 9)  # validations that name other variables
    texts = [p.read_text() for p in tf_files()] + [(TERRAFORM / "README.md").read_text()]
    if any("use_lockfile" in text for text in texts):
        assert minimum_version(required) >= LOCKFILE_SINCE, (
            f"use_lockfile needs Terraform {LOCKFILE_SINCE}, required_version is {required!r}")


def test_minimum_version_reads_the_constraint() -> None:
    assert minimum_version(">= 1.9.0") == (1, 9)
    assert minimum_version(">= 1.11.0, < 2.0.0") == (1, 11)
    assert minimum_version("~> 1.10") == (1, 10)


def test_no_module_is_called_with_depends_on() -> None:
    # A module-level depends_on makes every data source in the module wait for the whole other
    # module, so they are read at apply and the plan shows changes that are not there.
    # https://developer.hashicorp.com/terraform/language/meta-arguments/depends_on
    calls = items("module")
    assert len(calls) >= 10
    assert [c.address for c in calls if "depends_on" in c.body] == []


def test_what_needs_the_vpc_endpoints_gets_its_subnets_through_them() -> None:
    assert ref(_module_call("gpu_hosts")["subnet_ids"]) == "module.endpoints.subnet_ids"
    assert ref(_module_call("functions")["private_subnet_ids"]) == "module.endpoints.subnet_ids"
    output = next(o for o in items("output")
                  if module_of(o.path) == "endpoints" and o.name == "subnet_ids")
    assert ref(output.body["value"]) == "var.subnet_ids"
    assert {ref(d) for d in output.body["depends_on"]} == {
        "aws_vpc_endpoint.interface", "aws_vpc_endpoint.s3"}


def test_the_gpu_hosts_image_is_pinned() -> None:
    # An image read from "latest" at plan time replaces every host whenever AWS releases one.
    lookups = [d.address for d in items("data")
               if d.type in ("aws_ssm_parameter", "aws_ami", "aws_ami_ids")]
    assert lookups == []
    templates = items("resource", "aws_launch_template")
    assert [ref(t.body["image_id"]) for t in templates] == ["var.ami_id"]
    assert ref(_module_call("gpu_hosts")["ami_id"]) == "var.gpu_ami_id"
    module_var = next(v for v in items("variable")
                      if module_of(v.path) == "gpu_hosts" and v.name == "ami_id")
    assert "default" not in module_var.body
    try:
        default = root_default("gpu_ami_id")
    except KeyError:
        raise AssertionError("variables.tf has no gpu_ami_id") from None
    assert default is None  # required: no default, and null fails the validation below
    root_var = next(v for v in items("variable", files=[TERRAFORM / "variables.tf"])
                    if v.name == "gpu_ami_id")
    assert "default" not in root_var.body
    condition = str(blocks(root_var.body, "validation")[0]["condition"])
    assert "null" not in condition and "ami-" in condition
