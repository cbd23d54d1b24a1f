"""Secrets from AWS (Secrets Manager, SSM Parameter Store), read once per process.

On Lambda the bot tokens, signing secrets and keys live in AWS, never in the package or in
plain environment variables. Two sources, both optional, named in the environment:

- ``CHARLA_SECRETS_ARN``: one Secrets Manager secret whose value is a JSON object of
  environment-style names and values (``{"SLACK_BOT_TOKEN": "xoxb-…", …}``);
- ``CHARLA_SSM_PREFIX``: a parameter path (``/charla/prod``); each parameter directly under it
  is read by its last name (``/charla/prod/SLACK_SIGNING_SECRET``), SecureStrings decrypted.

Their values are laid over the environment before :class:`~shared.settings.Settings` is built
(environment < parameters < secret). They are fetched on first use and kept for the life of the
process (a Lambda container): a rotated secret reaches new containers. Values never appear in a
log line, an error or a repr. AWS is called through shared/aws.py (signed JSON requests with the
function's credentials): a cold start's first secret costs about a quarter of what it costs
through botocore (37 against 152 ms, docs/benchmarks.md, "Cold start on Lambda").
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping

from shared.errors import ConfigError

log = logging.getLogger(__name__)

SECRET_ARN = "CHARLA_SECRETS_ARN"  # noqa: S105 - the setting's name, not a secret
SSM_PREFIX = "CHARLA_SSM_PREFIX"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

_cache: dict[tuple[str | None, str | None], SecretValues] = {}


class SecretValues(Mapping[str, str]):
    """Names and values read from AWS; prints its names only."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretValues(names={sorted(self._values)!r})"


class Overlay(Mapping[str, str]):
    """``top`` laid over ``base``; prints as the names it holds, never the values."""

    def __init__(self, base: Mapping[str, str], top: Mapping[str, str]) -> None:
        self._base = base
        self._top = top

    def __getitem__(self, name: str) -> str:
        if name in self._top:
            return self._top[name]
        return self._base[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._top
        yield from (name for name in self._base if name not in self._top)

    def __len__(self) -> int:
        return len(set(self._base) | set(self._top))

    def __repr__(self) -> str:
        return f"Overlay({len(self)} names, {len(self._top)} from AWS)"


def environ_with_secrets(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` with the configured secrets laid over it (itself when none is configured)."""
    values = load(environ)
    return Overlay(environ, values) if values else environ


def load(environ: Mapping[str, str]) -> SecretValues:
    """The values of the configured sources, fetched once per process and then kept."""
    arn = environ.get(SECRET_ARN, "").strip() or None
    prefix = environ.get(SSM_PREFIX, "").strip() or None
    key = (arn, prefix)
    if key not in _cache:
        values: dict[str, str] = {}
        if prefix:
            values.update(_parameters(prefix))
        if arn:
            values.update(_secret(arn))
        _cache[key] = SecretValues(values)
        if values:
            log.info("read %d settings from AWS: %s", len(values), ", ".join(sorted(values)))
    return _cache[key]


def forget() -> None:
    """Drop what was read, so the next :func:`load` asks AWS again (tests, rotation)."""
    _cache.clear()


def _secret(arn: str) -> dict[str, str]:
    from shared import aws

    try:
        answer = aws.Client(aws.SECRETS_MANAGER).call("GetSecretValue", SecretId=arn)
    except aws.AwsError as exc:
        raise ConfigError(f"cannot read {SECRET_ARN} ({arn}): {exc.code}") from None
    try:
        document = json.loads(answer.get("SecretString") or "")
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ConfigError(f"{SECRET_ARN} ({arn}) must hold a JSON object of names and values")
    values: dict[str, str] = {}
    for name, value in document.items():
        if not _NAME.match(name) or not isinstance(value, str):
            raise ConfigError(f"{SECRET_ARN}: {name!r} must be an upper-case setting name with "
                              "a string value")
        values[name] = value
    return values


def _parameters(prefix: str) -> dict[str, str]:
    from shared import aws

    path = "/" + prefix.strip("/")
    values: dict[str, str] = {}
    params: dict[str, object] = {"Path": path, "Recursive": False, "WithDecryption": True}
    try:
        ssm = aws.Client(aws.SSM)
        while True:
            page = ssm.call("GetParametersByPath", **params)
            for parameter in page.get("Parameters", []):
                name = str(parameter["Name"]).rsplit("/", 1)[-1]
                if _NAME.match(name):
                    values[name] = str(parameter["Value"])
                else:
                    log.warning("%s: parameter %s ignored: not a setting name", SSM_PREFIX,
                                parameter["Name"])
            if not page.get("NextToken"):
                break
            params["NextToken"] = page["NextToken"]
    except aws.AwsError as exc:
        raise ConfigError(f"cannot read parameters under {SSM_PREFIX} ({path}): {exc.code}"
                          ) from None
    return values
