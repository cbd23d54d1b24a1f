"""The llama-server command line the settings make (model_server/main.build_engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.main import build_engine
from shared.errors import ConfigError
from shared.settings import Settings


def _command(tmp_path: Path, **env: str) -> list[str]:
    settings = Settings.from_env({"CHARLA_HOME": str(tmp_path),
                                  "CHARLA_LLAMA_SERVER_BIN": "/opt/llama-server", **env})
    return build_engine(settings).command(8123)  # type: ignore[attr-defined, no-any-return]


def _value(cmd: list[str], flag: str) -> str:
    """The value after the last ``flag`` (llama-server takes the last one given)."""
    last = len(cmd) - 1 - cmd[::-1].index(flag)
    return cmd[last + 1]


def test_flash_attention_is_off_unless_asked_for(tmp_path: Path) -> None:
    cmd = _command(tmp_path)
    assert cmd[0] == "/opt/llama-server"
    assert _value(cmd, "--flash-attn") == "off"
    assert _value(_command(tmp_path, CHARLA_ENGINE_FLASH_ATTN="on"), "--flash-attn") == "on"
    assert _value(_command(tmp_path, CHARLA_ENGINE_FLASH_ATTN="Auto"), "--flash-attn") == "auto"


def test_extra_engine_arguments_come_last_and_so_win(tmp_path: Path) -> None:
    cmd = _command(tmp_path, CHARLA_ENGINE_ARGS="--flash-attn on --threads 1")
    assert cmd[-4:] == ["--flash-attn", "on", "--threads", "1"]
    assert _value(cmd, "--flash-attn") == "on"


def test_an_unknown_flash_attention_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CHARLA_ENGINE_FLASH_ATTN must be one of off, on, "
                                          "auto, got 'yes'"):
        _command(tmp_path, CHARLA_ENGINE_FLASH_ATTN="yes")
