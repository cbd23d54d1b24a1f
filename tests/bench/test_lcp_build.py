"""The bench's llama-cpp-python build follows llama-server's recipe (bench/lcp_build.py)."""

from __future__ import annotations

import sys
import types

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


def _installed(monkeypatch: pytest.MonkeyPatch, info: bytes) -> None:
    fake = types.ModuleType("llama_cpp")
    fake.llama_print_system_info = lambda: info  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)


def test_a_build_with_amx_is_refused_before_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, b"CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | ")
    with pytest.raises(RuntimeError, match=r"AMX kernels.*bench\.lcp_build"):
        lcp_build.require_no_amx()


def test_a_build_without_amx_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, b"CPU : AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | OPENMP = 1 | ")
    lcp_build.require_no_amx()
