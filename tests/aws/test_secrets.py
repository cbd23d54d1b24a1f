"""Secrets from Secrets Manager and SSM Parameter Store (moto), read once, never shown."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from functions.platforms import load
from shared import secrets
from shared.errors import ConfigError
from shared.settings import Settings
from tests.aws.conftest import Aws

SLACK_TOKEN = "xoxb-9999999999-8888888888-sEcReTfRoMsEcReTsMaNaGeR"
SIGNING = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
DB = "postgresql://charla:pa55-w0rd-in-aws@db.internal:5432/charla"
TELEGRAM = "7000000009:AAFromParameterStore_abcdefghijklmno"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    secrets.forget()
    yield
    secrets.forget()


def secret(aws: Aws, values: object) -> str:
    arn: str = aws.client("secretsmanager").create_secret(
        Name=f"charla/{uuid.uuid4().hex[:8]}", SecretString=json.dumps(values))["ARN"]
    return arn


def parameters(aws: Aws, values: dict[str, str]) -> str:
    prefix = f"/charla/{uuid.uuid4().hex[:8]}"
    ssm = aws.client("ssm")
    for name, value in values.items():
        ssm.put_parameter(Name=f"{prefix}/{name}", Value=value, Type="SecureString")
    ssm.put_parameter(Name=f"{prefix}/nested/DEEPER", Value="x", Type="String")
    return prefix


def test_a_secret_is_laid_over_the_environment(aws: Aws) -> None:
    arn = secret(aws, {"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SIGNING,
                       "DATABASE_URL": DB})
    environ = {"CHARLA_SECRETS_ARN": arn, "SLACK_BOT_TOKEN": "from-the-environment",
               "CHARLA_LOG_LEVEL": "debug"}
    settings = Settings.from_env(secrets.environ_with_secrets(environ))
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.reveal() == SLACK_TOKEN
    assert settings.database_url is not None and settings.database_url.reveal() == DB
    assert load("slack").enabled(settings) and settings.log_level == "DEBUG"


def test_parameters_are_read_by_name_under_the_prefix(aws: Aws) -> None:
    prefix = parameters(aws, {"TELEGRAM_BOT_TOKEN": TELEGRAM, "TELEGRAM_SECRET_TOKEN": "s3cr3t",
                              "SLACK_BOT_TOKEN": "from-ssm"})
    arn = secret(aws, {"SLACK_BOT_TOKEN": SLACK_TOKEN})
    loaded = secrets.load({"CHARLA_SSM_PREFIX": prefix + "/", "CHARLA_SECRETS_ARN": arn})
    assert dict(loaded) == {"TELEGRAM_BOT_TOKEN": TELEGRAM, "TELEGRAM_SECRET_TOKEN": "s3cr3t",
                            "SLACK_BOT_TOKEN": SLACK_TOKEN}  # the secret wins over SSM


def test_every_page_of_parameters_is_read(aws: Aws) -> None:
    # GetParametersByPath answers 10 at most per page.
    many = {f"CHARLA_SETTING_{i:02d}": f"value-{i}" for i in range(23)}
    prefix = parameters(aws, many)
    assert dict(secrets.load({"CHARLA_SSM_PREFIX": prefix})) == many


def test_read_once_per_container(aws: Aws) -> None:
    sm = aws.client("secretsmanager")
    arn = secret(aws, {"SLACK_BOT_TOKEN": SLACK_TOKEN})
    environ = {"CHARLA_SECRETS_ARN": arn}
    first = secrets.load(environ)
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"SLACK_BOT_TOKEN": "rotated"}))
    assert secrets.load(environ) is first  # no second call to AWS
    secrets.forget()  # a new container
    assert secrets.load(environ)["SLACK_BOT_TOKEN"] == "rotated"


def test_nothing_configured_reads_nothing(aws: Aws) -> None:
    environ = {"SLACK_BOT_TOKEN": "plain"}
    assert secrets.environ_with_secrets(environ) is environ
    assert len(secrets.load(environ)) == 0


@pytest.mark.parametrize("value", ["not json", '["a list"]', '{"lower_case": "x"}',
                                   '{"SLACK_BOT_TOKEN": 12}'])
def test_a_malformed_secret_is_a_clear_error_without_its_content(aws: Aws, value: str) -> None:
    arn: str = aws.client("secretsmanager").create_secret(
        Name=f"charla/{uuid.uuid4().hex[:8]}", SecretString=value)["ARN"]
    with pytest.raises(ConfigError, match="CHARLA_SECRETS_ARN") as caught:
        secrets.load({"CHARLA_SECRETS_ARN": arn})
    assert "12" not in str(caught.value).replace(arn, "")


def test_a_missing_secret_names_the_arn_and_the_reason(aws: Aws) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:charla/none-AbCdEf"
    with pytest.raises(ConfigError, match="ResourceNotFoundException"):
        secrets.load({"CHARLA_SECRETS_ARN": arn})


def test_values_never_appear_in_logs_or_reprs(aws: Aws, caplog: pytest.LogCaptureFixture
                                              ) -> None:
    arn = secret(aws, {"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SIGNING,
                       "DATABASE_URL": DB})
    prefix = parameters(aws, {"TELEGRAM_BOT_TOKEN": TELEGRAM})
    # Every logger at DEBUG from here: the test's own boto3 (above) logs whole bodies there,
    # the functions' AWS client must not.
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    environ = {"CHARLA_SECRETS_ARN": arn, "CHARLA_SSM_PREFIX": prefix}
    merged = secrets.environ_with_secrets(environ)
    settings = Settings.from_env(merged)
    shown = "\n".join([caplog.text, repr(merged), str(merged), repr(secrets.load(environ)),
                       repr(settings), str(settings)])
    assert "SLACK_BOT_TOKEN" in caplog.text  # the names are logged...
    for value in (SLACK_TOKEN, SIGNING, DB, TELEGRAM, "pa55-w0rd"):
        assert value not in shown  # ...the values never
