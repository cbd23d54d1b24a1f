"""The deployment's KMS keys: a key policy AWS accepts on a fresh account, and secrets kept apart.

CreateKey refuses a key policy that names a principal which does not exist yet
(MalformedPolicyDocumentException). Auto Scaling's service-linked role, which must be named for
the GPU hosts' encrypted volumes
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html),
exists only after an account's first Auto Scaling group; so the kms module creates it and the key
policy takes its ARN from that resource, which orders the key after the role.

The app secret and DATABASE_URL have a key of their own that the GPU hosts' role may not use:
AmazonSSMManagedInstanceCore lets the hosts call ssm:GetParameter on every parameter, and a
SecureString's value needs kms:Decrypt on its key
(https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html).
"""

from __future__ import annotations

import re
from typing import Any

from tests.infra.hcl import (
    TERRAFORM,
    Block,
    as_list,
    blocks,
    items,
    module_of,
    parsed,
    ref,
    root_default,
)

ROLE_VARIABLE = "create_autoscaling_service_linked_role"
ROLE_LOCAL = "${local.autoscaling_role_arn}"
# When the variable is true, the ARN is the resource's attribute: a reference Terraform orders by.
_FROM_THE_RESOURCE = re.compile(
    rf"^\(?\s*var\.{ROLE_VARIABLE}\s*\?\s*aws_iam_service_linked_role\.autoscaling\[0\]\.arn\s*:")


def _module_call(name: str) -> dict[str, Any]:
    for call in items("module", files=[TERRAFORM / "main.tf"]):
        if call.name == name:
            return call.body
    raise AssertionError(f"main.tf does not call module {name}")


def _document(module: str, name: str) -> Block:
    for doc in items("data", "aws_iam_policy_document"):
        if module_of(doc.path) == module and doc.name == name:
            return doc.body
    raise AssertionError(f"no aws_iam_policy_document.{name} in modules/{module}")


def _output(module: str, name: str) -> str:
    for out in items("output"):
        if module_of(out.path) == module and out.name == name:
            return ref(out.body["value"])
    raise AssertionError(f"modules/{module} has no output {name}")


def _principals(statement: Block) -> list[str]:
    return [str(i) for p in blocks(statement, "principals") for i in as_list(p.get("identifiers"))]


def test_the_key_is_created_after_the_autoscaling_role_it_names() -> None:
    roles = [r for r in items("resource", "aws_iam_service_linked_role")
             if module_of(r.path) == "kms"]
    assert len(roles) == 1 and roles[0].name == "autoscaling"
    assert roles[0].body["aws_service_name"] == "autoscaling.amazonaws.com"
    assert ref(roles[0].body["count"]) == f"var.{ROLE_VARIABLE} ? 1 : 0"

    # No statement names the role by a literal ARN, which CreateKey refuses before the role
    # exists: every mention goes through the local, which is the resource's ARN when it is
    # created here.
    statements = blocks(_document("kms", "key"), "statement")
    naming_the_role = [s for s in statements
                       if any("autoscaling" in p.lower() for p in _principals(s))]
    assert len(naming_the_role) == 2  # use the key; grant its use to EC2 for the volumes
    for statement in naming_the_role:
        assert _principals(statement) == [ROLE_LOCAL], statement.get("sid")
    local = parsed(TERRAFORM / "modules/kms/main.tf")["locals"][0]["autoscaling_role_arn"]
    assert _FROM_THE_RESOURCE.match(ref(local)), local

    # The choice reaches the module from a root variable: on by default (a fresh account has no
    # role), off where the account has one already (creating it twice fails).
    assert root_default(ROLE_VARIABLE) is True
    assert ref(_module_call("kms")[ROLE_VARIABLE]) == f"var.{ROLE_VARIABLE}"


def test_the_secrets_have_a_key_of_their_own() -> None:
    assert _output("kms", "key_arn") == "aws_kms_key.this.arn"
    assert _output("kms", "secrets_key_arn") == "aws_kms_key.secrets.arn"
    assert ref(_module_call("secrets")["kms_key_arn"]) == "module.kms.secrets_key_arn"
    secrets = {r.type: r.body for r in items("resource") if module_of(r.path) == "secrets"}
    assert ref(secrets["aws_ssm_parameter"]["key_id"]) == "var.kms_key_arn"
    assert ref(secrets["aws_secretsmanager_secret"]["kms_key_id"]) == "var.kms_key_arn"
    # Only the account's IAM policies may grant the secrets key: no service, no other role.
    keys = {r.name: r.body for r in items("resource", "aws_kms_key") if module_of(r.path) == "kms"}
    assert ref(keys["secrets"]["policy"]) == "data.aws_iam_policy_document.account.json"
    statements = blocks(_document("kms", "account"), "statement")
    assert [_principals(s) for s in statements] == [
        ["arn:${local.partition}:iam::${local.account}:root"]]


def test_the_account_administers_both_keys() -> None:
    """A key policy without the account's statement leaves the key to nobody's IAM policies:
    the main key's policy is built on the same document as the secrets key's."""
    keys = {r.name: r.body for r in items("resource", "aws_kms_key") if module_of(r.path) == "kms"}
    assert ref(keys["this"]["policy"]) == "data.aws_iam_policy_document.key.json"
    sources = [ref(d) for d in as_list(_document("kms", "key")["source_policy_documents"])]
    assert sources == ["data.aws_iam_policy_document.account.json"]
    [statement] = blocks(_document("kms", "account"), "statement")
    assert statement["sid"] == "AccountAdministersTheKey" and as_list(statement["actions"]) == [
        "kms:*"]


def test_the_gpu_hosts_can_neither_read_the_database_url_nor_use_its_key() -> None:
    call = _module_call("gpu_hosts")
    assert ref(call["kms_key_arn"]) == "module.kms.key_arn"
    assert ref(call["secrets_kms_key_arn"]) == "module.kms.secrets_key_arn"
    assert ref(call["denied_parameter_arns"]) == "module.secrets.parameters_path_arns"

    statements = blocks(_document("gpu_hosts", "host"), "statement")
    for statement in statements:
        if statement.get("effect", "Allow") != "Allow":
            continue
        actions = [str(a) for a in as_list(statement.get("actions"))]
        resources = [ref(r) for r in as_list(statement.get("resources"))]
        if any(a.startswith("kms:") for a in actions):
            assert resources == ["var.kms_key_arn"], statement.get("sid")
        assert not any(a.startswith(("ssm:", "secretsmanager:")) for a in actions), (
            statement.get("sid"))
    denied = {(tuple(as_list(s.get("actions"))), tuple(ref(r) for r in as_list(s.get("resources"))))
              for s in statements if s.get("effect") == "Deny"}
    assert denied == {
        (("ssm:GetParameter*",), ("var.denied_parameter_arns",)),
        (("kms:*",), ("var.secrets_kms_key_arn",)),
    }
    # The managed policy the hosts get (Session Manager) grants no KMS action at all.
    managed = {ref(a.body["policy_arn"]).rsplit("/", 1)[-1]
               for a in items("resource", "aws_iam_role_policy_attachment")
               if module_of(a.path) == "gpu_hosts"}
    assert managed == {"AmazonSSMManagedInstanceCore"}


def test_the_functions_may_decrypt_the_secret_and_the_parameters() -> None:
    assert ref(_module_call("functions")["secrets_kms_key_arn"]) == "module.kms.secrets_key_arn"
    for name in ("webhook", "api", "worker"):
        statements = blocks(_document("functions", name), "statement")
        assert any("kms:Decrypt" in as_list(s.get("actions"))
                   and [ref(r) for r in as_list(s.get("resources"))] == ["var.secrets_kms_key_arn"]
                   for s in statements), name
