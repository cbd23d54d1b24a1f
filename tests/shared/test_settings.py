from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Secret, Settings


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env({})
    assert s.port == 8000
    assert s.model_server_port == 8001
    assert s.model_server_url == "http://127.0.0.1:8001"
    assert s.database_url is None
    assert s.rate_limit_storage == "memory://"
    assert s.slack_streaming is True
    assert Settings.from_env({"CHARLA_SLACK_STREAMING": "OFF"}).slack_streaming is False
    assert s.telegram_streaming is True
    assert Settings.from_env({"CHARLA_TELEGRAM_STREAMING": "off"}).telegram_streaming is False


def test_an_upstream_engine_takes_every_feature_unless_told_otherwise() -> None:
    every = frozenset({"response_format", "tools", "logprobs"})
    assert Settings.from_env({}).engine_features == every
    told = Settings.from_env({"CHARLA_ENGINE_FEATURES": " Logprobs , response_format"})
    assert told.engine_features == {"logprobs", "response_format"}
    assert Settings.from_env({"CHARLA_ENGINE_FEATURES": "none"}).engine_features == set()


def test_model_server_port_moves_the_default_url() -> None:
    s = Settings.from_env({"MODEL_SERVER_PORT": "9001"})
    assert s.model_server_url == "http://127.0.0.1:9001"
    s = Settings.from_env({"MODEL_SERVER_PORT": "9001", "MODEL_SERVER_URL": "http://gpu:80/"})
    assert s.model_server_url == "http://gpu:80"


def test_secrets_never_print() -> None:
    s = Settings.from_env({
        "DATABASE_URL": "postgresql://u:hunter2@db/x",
        "CHARLA_API_JWT_SECRET": "s" * 40,
    })
    for text in (repr(s), str(s), f"{s}", repr(s.database_url), str(s.api_jwt_secret)):
        assert "hunter2" not in text
        assert "s" * 40 not in text
    assert s.database_url is not None
    assert s.database_url.reveal() == "postgresql://u:hunter2@db/x"
    assert repr(Secret("x")) == "Secret('**********')"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PORT", "eighty", "whole number"),
        ("PORT", "0", "at least 1"),
        ("CHARLA_ENGINE", "magic", "one of"),
        ("CHARLA_MODEL_TIMEOUT", "-3", "positive"),
        ("CHARLA_SLACK_STREAMING", "yes", "one of"),
        ("CHARLA_TELEGRAM_STREAMING", "drafts", "one of"),
        ("CHARLA_ENGINE_FEATURES", "tools,grammar", "lists grammar"),
    ],
)
def test_bad_values_say_which_setting(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)
    assert words in str(err.value)


def test_keys_read_from_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "pub.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n")
    s = Settings.from_env({"CHARLA_SERVICE_PUBLIC_KEY": str(key)})
    assert s.service_public_key is not None
    assert "BEGIN PUBLIC KEY" in s.service_public_key.reveal()
    with pytest.raises(ConfigError, match="cannot read key file"):
        Settings.from_env({"CHARLA_SERVICE_PUBLIC_KEY": str(tmp_path / "missing.pem")})


def test_context_window_is_per_slot() -> None:
    s = Settings.from_env({"CHARLA_ENGINE_CTX_SIZE": "32768", "CHARLA_ENGINE_PARALLEL": "8"})
    assert s.context_window == 4096
