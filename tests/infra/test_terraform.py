"""The AWS deployment in infra/terraform, checked as files: no terraform binary, no AWS.

python-hcl2 parses every .tf file; the tests read the firewall, IAM and wiring facts from the
parse. checkov then runs its security policies over the whole tree: no failed check, and every
skip written next to its resource with a reason.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.hcl import (
    ROOT,
    TERRAFORM,
    Ingress,
    Item,
    as_list,
    blocks,
    ingress_rules,
    items,
    module_of,
    parsed,
    policy_actions,
    ref,
    root_default,
    tf_files,
)

INTERNET = ("0.0.0.0/0", "::/0")
GATEWAY_PORT = 8001
FUNCTIONS_SG = "module.security.aws_security_group.functions"
LOAD_BALANCER_SG = "module.security.aws_security_group.load_balancer"
GPU_HOSTS_SG = "module.security.aws_security_group.gpu_hosts"


def _qualified(rule: Ingress, group: str) -> str:
    """``aws_security_group.functions`` in modules/security → its module address."""
    prefix = rule.address.split("aws_", 1)[0]
    return f"{prefix}{group}"


def _ingress_into(group: str) -> list[Ingress]:
    return [r for r in ingress_rules() if _qualified(r, r.group) == group]


def _module_call(name: str) -> dict[str, Any]:
    for call in items("module", files=[TERRAFORM / "main.tf"]):
        if call.name == name:
            return call.body
    raise AssertionError(f"main.tf does not call module {name}")


def _one(kind: str) -> Item:
    found = items("resource", kind)
    assert len(found) == 1, f"expected one {kind}, found {[f.address for f in found]}"
    return found[0]


# --- Parsing and declarations -----------------------------------------------------------------


def test_every_terraform_file_parses_and_the_layout_is_complete() -> None:
    files = tf_files()
    for path in files:
        assert parsed(path), f"{path} parsed to nothing"
    names = {p.relative_to(TERRAFORM).as_posix() for p in files}
    assert {"versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= names
    for part in ("network", "security", "gpu_hosts", "load_balancer", "functions", "api",
                 "queue", "secrets", "database"):
        assert f"modules/{part}/main.tf" in names, f"no module for {part}"


def test_every_variable_has_a_description_and_a_type() -> None:
    variables = items("variable")
    assert len(variables) > 40
    for var in variables:
        assert str(var.body.get("description", "")).strip(), f"{var.address}: no description"
        assert var.body.get("type"), f"{var.address}: no type"


def test_every_output_has_a_description() -> None:
    # Terraform's outputs take no type; their values are typed by what they hold.
    outputs = items("output")
    assert len(outputs) > 20
    for out in outputs:
        assert str(out.body.get("description", "")).strip(), f"{out.address}: no description"


def test_cidr_and_port_variables_are_validated() -> None:
    checked = [v for v in items("variable") if re.search(r"cidr|port", v.name)]
    assert len(checked) >= 8
    for var in checked:
        assert blocks(var.body, "validation"), f"{var.address} has no validation block"


def test_the_root_cidr_validations_accept_the_defaults_and_name_cidrhost() -> None:
    for var in items("variable", files=[TERRAFORM / "variables.tf"]):
        if "cidr" in var.name:
            conditions = " ".join(str(v["condition"]) for v in blocks(var.body, "validation"))
            assert "cidrhost" in conditions, f"{var.name} is not checked as a CIDR"
    for name in ("private_subnet_cidrs", "worker_subnet_cidrs", "public_subnet_cidrs"):
        assert len(root_default(name)) == len(root_default("availability_zones"))


# --- The firewall -----------------------------------------------------------------------------


def test_no_ingress_is_open_to_the_internet() -> None:
    rules = ingress_rules()
    assert len(rules) >= 5
    for rule in rules:
        assert not set(rule.cidrs) & set(INTERNET), f"{rule.address} is open to the internet"


def test_any_address_appears_only_in_routes_and_the_workers_https_egress() -> None:
    # The only public entry is the API Gateway endpoint, which has no security group. "Any
    # address" may be a route (the NAT's and the worker's way out) or the worker's HTTPS egress.
    found: list[str] = []
    for path in tf_files():
        for entry in parsed(path).get("resource", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    if any(cidr in json.dumps(body) for cidr in INTERNET):
                        found.append(f"{kind}.{name}")
    assert found, "expected the NAT routes and the worker's egress"
    for address in found:
        assert address.split(".")[0] in ("aws_route", "aws_vpc_security_group_egress_rule"), (
            f"{address} mentions an any-address CIDR")
    egress = [e for e in items("resource", "aws_vpc_security_group_egress_rule")
              if e.body.get("cidr_ipv4") in INTERNET or e.body.get("cidr_ipv6") in INTERNET]
    assert [e.name for e in egress] == ["worker_to_platforms"]
    rule = egress[0].body
    assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (443, 443, "tcp")
    assert ref(rule["security_group_id"]) == "aws_security_group.worker_internet.id"


def test_gateway_port_is_reachable_only_from_the_functions() -> None:
    assert root_default("gateway_port") == GATEWAY_PORT
    on_port = [r for r in ingress_rules() if r.covers(GATEWAY_PORT)]
    doors = {(_qualified(r, r.group), tuple(_qualified(r, s) for s in r.source_groups),
              r.cidrs, r.prefix_lists) for r in on_port}
    # functions → load balancer → GPU hosts, and nothing else on that port.
    assert doors == {
        (LOAD_BALANCER_SG, (FUNCTIONS_SG,), (), ()),
        (GPU_HOSTS_SG, (LOAD_BALANCER_SG,), (), ()),
    }
    # The load balancer and the hosts have no other way in, on any port.
    assert [r.address for r in _ingress_into(LOAD_BALANCER_SG)] == [
        "module.security.aws_vpc_security_group_ingress_rule.gateway_from_functions"]
    assert [r.address for r in _ingress_into(GPU_HOSTS_SG)] == [
        "module.security.aws_vpc_security_group_ingress_rule.hosts_from_load_balancer"]


def test_the_gateway_security_groups_are_the_ones_wired_to_the_load_balancer_and_hosts() -> None:
    outputs = {o.name: ref(o.body["value"]) for o in items("output")
               if module_of(o.path) == "security"}
    assert outputs["functions_sg_id"] == "aws_security_group.functions.id"
    assert outputs["load_balancer_sg_id"] == "aws_security_group.load_balancer.id"
    assert outputs["gpu_hosts_sg_id"] == "aws_security_group.gpu_hosts.id"
    assert ref(_module_call("load_balancer")["security_group_id"]) == (
        "module.security.load_balancer_sg_id")
    assert ref(_module_call("gpu_hosts")["security_group_id"]) == "module.security.gpu_hosts_sg_id"
    assert ref(_module_call("functions")["functions_sg_id"]) == "module.security.functions_sg_id"
    lb = _one("aws_lb").body
    assert lb["internal"] is True
    assert [ref(g) for g in lb["security_groups"]] == ["var.security_group_id"]
    template = _one("aws_launch_template").body
    assert [ref(g) for g in template["vpc_security_group_ids"]] == ["var.security_group_id"]


def test_no_port_22_ingress_at_all() -> None:
    for rule in ingress_rules():
        assert not rule.covers(22), f"{rule.address} lets SSH in"
    template = _one("aws_launch_template").body
    assert "key_name" not in template, "GPU hosts are administered through SSM, not SSH keys"
    attachments = [ref(a.body["policy_arn"]) for a in items(
        "resource", "aws_iam_role_policy_attachment") if module_of(a.path) == "gpu_hosts"]
    assert any(a.endswith("AmazonSSMManagedInstanceCore") for a in attachments)


def test_the_database_is_reachable_only_from_the_functions() -> None:
    rules = _ingress_into("module.security.aws_security_group.database")
    assert len(rules) == 1
    assert rules[0].source_groups == ("aws_security_group.functions",)
    assert rules[0].from_port == rules[0].to_port == 5432


# --- GPU hosts, queue, functions, API ---------------------------------------------------------


def test_launch_template_requires_imdsv2_and_encrypts_its_volumes() -> None:
    template = _one("aws_launch_template").body
    metadata = blocks(template, "metadata_options")
    assert metadata and metadata[0]["http_tokens"] == "required"
    devices = blocks(template, "block_device_mappings")
    assert devices
    for device in devices:
        for ebs in blocks(device, "ebs"):
            assert ebs["encrypted"] is True
            assert ref(ebs["kms_key_id"]) == "var.kms_key_arn"
    group = _one("aws_autoscaling_group").body
    assert ref(blocks(group, "launch_template")[0]["id"]) == "aws_launch_template.this.id"
    assert group["health_check_type"] == "ELB"


def test_queue_sends_failed_jobs_to_the_dead_letter_queue() -> None:
    queues = {q.name: q.body for q in items("resource", "aws_sqs_queue")}
    assert set(queues) == {"jobs", "dead_letters"}
    policy = ref(queues["jobs"]["redrive_policy"])
    assert re.search(r"deadLetterTargetArn\s*=\s*aws_sqs_queue\.dead_letters\.arn", policy)
    assert re.search(r"maxReceiveCount\s*=\s*var\.max_receive_count", policy)
    assert ref(_module_call("queue")["max_receive_count"]) == "var.queue_max_receive_count"
    for body in queues.values():
        assert body.get("kms_master_key_id"), "queues are encrypted with the deployment's key"
    mapping = _one("aws_lambda_event_source_mapping").body
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert ref(mapping["function_name"]) == 'aws_lambda_function.this["worker"].arn'


def test_each_lambda_role_grants_no_wildcard_action_or_resource() -> None:
    documents = [d for d in items("data", "aws_iam_policy_document")
                 if module_of(d.path) == "functions" and d.name != "assume"]
    assert {d.name for d in documents} == {"webhook", "api", "worker"}
    for doc in documents:
        for statement in blocks(doc.body, "statement"):
            for action in as_list(statement.get("actions")):
                assert action != "*" and not str(action).endswith(":*"), (
                    f"{doc.address} allows {action}")
            for resource in as_list(statement.get("resources")):
                assert resource != "*", f"{doc.address} grants on every resource"
    by_name = {d.name: set(policy_actions(d.body)) for d in documents}
    assert "sqs:SendMessage" in by_name["webhook"]
    # The API's admin view reads failed jobs and moves them back: it receives from the
    # dead-letter queue only, never from the queue the worker takes jobs from.
    api = next(d for d in documents if d.name == "api")
    for statement in blocks(api.body, "statement"):
        if "${var.queue_arn}" in as_list(statement.get("resources")):
            assert set(as_list(statement.get("actions"))) <= {"sqs:GetQueueAttributes",
                                                              "sqs:SendMessage"}
    assert "sqs:ReceiveMessage" in by_name["api"]
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= by_name["worker"]
    attachments = items("resource", "aws_iam_role_policy_attachment")
    managed = {ref(a.body["policy_arn"]) for a in attachments if module_of(a.path) == "functions"}
    assert managed == {"arn:${data.aws_partition.current.partition}:iam::aws:policy/"
                       "service-role/AWSLambdaVPCAccessExecutionRole"}


def test_no_iam_policy_outside_the_key_policy_allows_every_action() -> None:
    for doc in items("data", "aws_iam_policy_document"):
        if module_of(doc.path) == "kms":
            continue  # a key policy's "kms:*" for the account root is how IAM may grant the key
        for action in policy_actions(doc.body):
            assert action != "*" and not action.endswith(":*"), f"{doc.address}: {action}"


def test_lambda_functions_run_the_handlers_in_the_private_subnets() -> None:
    function = _one("aws_lambda_function").body
    assert function["handler"] == "functions.${each.key}.lambda_handler.handler"
    functions_local = parsed(TERRAFORM / "modules/functions/main.tf")["locals"][0]["functions"]
    assert set(functions_local) == {"slack", "telegram", "discord", "api", "worker"}
    assert blocks(function, "vpc_config")
    zips = root_default("lambda_zip_paths")
    assert zips == {k: f"dist/lambda/{k}.zip" for k in functions_local}
    environment = parsed(TERRAFORM / "modules/functions/main.tf")["locals"][0]["environment"]
    for name in ("CHARLA_QUEUE", "CHARLA_SQS_QUEUE_URL", "CHARLA_SECRETS_ARN",
                 "CHARLA_SSM_PREFIX", "MODEL_SERVER_URL", "DISCORD_APPLICATION_ID"):
        assert name in environment, f"the functions get no {name}"
    assert "DATABASE_URL" not in environment, "DATABASE_URL comes from SSM, not the environment"


def test_api_gateway_sends_each_webhook_to_its_own_function() -> None:
    # Every other route goes to the api function: tests/infra/test_api_routes.py.
    routes = parsed(TERRAFORM / "modules/api/main.tf")["locals"][0]["routes"]
    webhooks = {key: fn for key, fn in routes.items() if fn != "api"}
    assert webhooks == {
        "POST /slack/events": "slack",
        "POST /telegram/webhook": "telegram",
        "POST /discord/interactions": "discord",
    }
    assert _one("aws_apigatewayv2_api").body["protocol_type"] == "HTTP"


def test_the_database_is_private_encrypted_and_required_when_not_created() -> None:
    db = _one("aws_db_instance").body
    assert db["publicly_accessible"] is False
    assert db["storage_encrypted"] is True
    assert db["iam_database_authentication_enabled"] is True
    assert ref(db["deletion_protection"]) == "var.settings.deletion_protection"
    assert root_default("database")["deletion_protection"] is True
    assert int(str(root_default("database")["engine_version"]).split(".")[0]) >= 16
    url = next(v for v in items("variable", files=[TERRAFORM / "variables.tf"])
               if v.name == "database_url")
    assert url.body["sensitive"] is True
    condition = str(blocks(url.body, "validation")[0]["condition"])
    assert "var.create_database" in condition and "var.database_url" in condition


# --- checkov ----------------------------------------------------------------------------------

_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = 0
    for path in tf_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = _SKIP.search(line)
            if match:
                skips += 1
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 20, f"{path}:{number}: skip {match.group(1)} needs a reason"
    assert skips > 0


def _checkov() -> Path | None:
    local = ROOT / ".venv-checkov" / "bin" / "checkov"
    if local.exists():
        return local
    found = shutil.which("checkov")
    return Path(found) if found else None


def test_checkov_finds_no_failed_check() -> None:
    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov is not installed: `make checkov` puts it in .venv-checkov "
                    "(it could not be installed from the package index)")
    # --skip-download: no policy metadata from the vendor's servers, nothing leaves the machine.
    done = subprocess.run(
        [str(checkov), "-d", str(TERRAFORM), "--framework", "terraform", "--compact",
         "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=240, check=False)
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [f"{f['check_id']} {f['resource']} ({f['file_path']}): {f['check_name']}"
              for f in report["results"].get("failed_checks", [])]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 200
    assert summary["resource_count"] > 80
    for skipped in report["results"].get("skipped_checks", []):
        comment = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(comment.strip()) >= 20, f"{skipped['check_id']} skipped without a reason"


def test_the_functions_refuse_an_upload_that_would_not_fit_a_lambda_invocation() -> None:
    """Lambda takes 6 MB per synchronous invocation, and a file travels base64-encoded in it:
    the app's own 413 (with how to add a larger file) must come before AWS's failure."""
    text = (TERRAFORM / "modules" / "functions" / "main.tf").read_text()
    found = re.search(r"CHARLA_KB_MAX_UPLOAD_BYTES = tostring\(([\d *]+)\)", text)
    assert found, "the functions do not set CHARLA_KB_MAX_UPLOAD_BYTES"
    limit = math.prod(int(factor) for factor in found.group(1).split("*"))
    assert 0 < limit * 4 / 3 < 6 * 1000 * 1000 - 200_000  # room for the event's JSON


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary here")
def test_terraform_fmt_finds_nothing_to_change() -> None:
    done = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
