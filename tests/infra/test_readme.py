"""infra/terraform/README.md, read as an operator follows it: its commands in the order they run.

The worker's settings come from the app secret (functions/lambda_app.py reads it before
anything else, and the database refuses to open without the data keys in it), so the README's
migrate must come after the secret has a value, which needs the secret to exist (the full
``terraform apply``).
"""

from __future__ import annotations

import re

from tests.infra.hcl import TERRAFORM, minimum_version, required_terraform

README = TERRAFORM / "README.md"
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_STEP = re.compile(r"^\*\*(\d+)\. ", re.MULTILINE)


def code_blocks(text: str) -> list[str]:
    """The fenced blocks of ``text``, in document order."""
    return [m.group(1) for m in _FENCE.finditer(text)]


def first_block(blocks: list[str], pattern: str) -> int:
    """Index of the first block in which ``pattern`` (a regular expression) occurs."""
    for i, block in enumerate(blocks):
        if re.search(pattern, block):
            return i
    raise AssertionError(f"no command block matches {pattern!r}")


_APPLY = r"(?m)^terraform apply\s*$"  # the whole configuration, not a -target
_PUT_SECRET = r"aws secretsmanager put-secret-value"
_MIGRATE = r"""['"]charla['"]\s*:\s*['"]migrate['"]"""


def test_the_secret_is_filled_in_before_the_worker_migrates() -> None:
    blocks = code_blocks(README.read_text())
    apply, put, migrate = (first_block(blocks, p) for p in (_APPLY, _PUT_SECRET, _MIGRATE))
    assert apply < put < migrate, (
        f"apply (block {apply}), put-secret-value ({put}) and migrate ({migrate}) out of order")
    # What the worker cannot open the database without is in what is put.
    assert "CHARLA_DATA_KEYS" in blocks[put]


def test_the_apply_steps_are_numbered_in_order() -> None:
    text = README.read_text()
    apply_section = text.split("## Apply", 1)[1].split("\n## ", 1)[0]
    numbers = [int(n) for n in _STEP.findall(apply_section)]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 5


def test_the_order_check_reads_blocks_in_document_order() -> None:
    wrong = ("```sh\nterraform apply\naws lambda invoke --payload '{\"charla\": \"migrate\"}'\n"
             "```\n\n```sh\naws secretsmanager put-secret-value --secret-id x\n```\n")
    blocks = code_blocks(wrong)
    assert first_block(blocks, _MIGRATE) < first_block(blocks, _PUT_SECRET)


def test_the_readme_names_the_terraform_version_required() -> None:
    required = required_terraform()
    stated = re.search(r"You need Terraform (\d+)\.(\d+) or later", README.read_text())
    assert stated is not None
    assert (int(stated.group(1)), int(stated.group(2))) == minimum_version(required)


def test_the_readme_says_metrics_is_not_routed_and_why() -> None:
    # tests/infra/test_api_routes.py holds the route out; operators read why here.
    text = README.read_text()
    assert "`GET /metrics` is not routed" in text
    assert "admin" in text.split("`GET /metrics` is not routed", 1)[1][:400]


def test_every_output_the_readme_reads_exists() -> None:
    """``terraform output NAME`` in the README: each NAME is an output of the root module
    (the dead-letter queue's ARN, for its redrive, was missing)."""
    text = README.read_text()
    named = set(re.findall(r"terraform output (?:-raw |-json )?([a-z_]+)", text))
    outputs = set(re.findall(r'^output "([a-z_]+)"', (TERRAFORM / "outputs.tf").read_text(),
                             re.MULTILINE))
    assert "dead_letter_queue_arn" in named
    assert named <= outputs, f"not outputs: {sorted(named - outputs)}"
