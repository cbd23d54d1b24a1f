"""The bench's llama-cpp-python build follows llama-server's recipe (bench/lcp_build.py)."""

from __future__ import annotations

import pytest

from bench import lcp_build


def test_on_x86_64_it_is_native_without_amx() -> None:
    defines = lcp_build.defines("x86_64")
    assert "cmake.define.GGML_NATIVE=ON" in defines
    flags = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    # Each is one --config-settings value, spaces and all.
    assert f"cmake.define.CMAKE_C_FLAGS={flags}" in defines
    assert f"cmake.define.CMAKE_CXX_FLAGS={flags}" in defines
    assert len(defines) == 3  # nothing of llama-server's own targets


def test_elsewhere_there_are_no_x86_flags() -> None:
    assert lcp_build.defines("aarch64") == ["cmake.define.GGML_NATIVE=ON"]


def test_the_cache_key_follows_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"CHARLA_CACHE_DIR": "/cache"}
    before = lcp_build.wheel_dir(env)
    assert before.parent.as_posix() == "/cache/llama-cpp-python"
    monkeypatch.setattr(lcp_build, "defines", lambda: ["cmake.define.GGML_NATIVE=OFF"])
    assert lcp_build.wheel_dir(env) != before
