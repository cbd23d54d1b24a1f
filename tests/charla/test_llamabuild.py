"""Building llama-server: the recipe, its cache key, and the check a new binary must pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from charla import llamabuild
from model_server.engines.base import EngineUnavailable
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path, exit_reason

AMX_FLAGS = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")


def _flag(flags: tuple[str, ...], name: str) -> str:
    return next(f for f in flags if f.startswith(f"-D{name}=")).split("=", 1)[1]


def test_x86_builds_leave_out_llama_cpps_amx_kernels_in_both_languages() -> None:
    flags = llamabuild.cmake_flags("x86_64")
    for language in ("CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS"):
        assert set(AMX_FLAGS) <= set(_flag(flags, language).split())
    assert "-DGGML_NATIVE=ON" in flags


def test_other_machines_get_no_x86_compiler_flags() -> None:
    flags = llamabuild.cmake_flags("aarch64")
    assert not any("amx" in f for f in flags)
    assert flags == llamabuild.CMAKE_FLAGS


def test_a_changed_recipe_is_a_different_cache_entry(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    env = {"CHARLA_CACHE_DIR": str(tmp_path)}
    before = llamabuild.binary_path(env)
    assert llamabuild.binary_path(env) == before  # stable
    monkeypatch.setattr(llamabuild, "CMAKE_FLAGS", (*llamabuild.CMAKE_FLAGS, "-DGGML_LTO=ON"))
    after = llamabuild.binary_path(env)
    assert after != before
    assert after.parent.parent == before.parent.parent == tmp_path / "llama-server"


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "llama-server"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_binary_that_crashes_on_the_model_is_refused_with_the_signal_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crashing = _script(tmp_path, 'echo "loading model $2"\nkill -ILL $$')
    with pytest.raises(RuntimeError, match=r"killed by SIGILL \(Illegal instruction\) while "
                                           r"loading the bundled model; it was not cached"):
        llamabuild.smoke_check(crashing)
    assert f"loading model {bundled_model_path()}" in capsys.readouterr().err


def test_a_binary_that_never_gets_ready_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not ready in 1 s"):
        llamabuild.smoke_check(_script(tmp_path, "exec sleep 30"), timeout_s=1)


def test_the_built_binary_passes_the_check(llama_server_bin: Path) -> None:
    llamabuild.smoke_check(llama_server_bin)


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump is not installed")
def test_the_built_binary_has_no_amx_tile_instructions(llama_server_bin: Path) -> None:
    if not llamabuild.cmake_flags()[-1].startswith("-DCMAKE_CXX_FLAGS"):
        pytest.skip("not an x86-64 build")
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(llama_server_bin)],
                             capture_output=True, text=True, check=True).stdout
    assert "vpdpbusd" in listing or "vpmaddubsw" in listing  # the disassembly has the kernels
    assert "tilezero" not in listing and "ldtilecfg" not in listing


def test_exit_reasons_read_like_english() -> None:
    assert exit_reason(1) == "exited with code 1"
    assert exit_reason(-4) == "was killed by SIGILL (Illegal instruction)"
    assert exit_reason(-9) == "was killed by SIGKILL (Killed)"
    assert exit_reason(-200) == "was killed by signal 200"


async def test_the_gateways_engine_names_the_signal_and_its_log(tmp_path: Path) -> None:
    engine = LlamaServerEngine(binary=_script(tmp_path, "kill -ILL $$"),
                               model_path=bundled_model_path(), model="m",
                               log_path=tmp_path / "logs" / "llama-server.log",
                               start_timeout_s=10)
    with pytest.raises(EngineUnavailable) as caught:
        await engine.start()
    log_path = tmp_path / "logs" / "llama-server.log"
    assert str(caught.value) == ("llama-server was killed by SIGILL (Illegal instruction) during "
                                 f"start; its output is in {log_path}")
