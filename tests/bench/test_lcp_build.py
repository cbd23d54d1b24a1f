"""The bench's llama-cpp-python build follows llama-server's recipe (bench/lcp_build.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench import lcp_build
from charla import llamabuild


def test_it_takes_llama_servers_native_flag_and_nothing_else() -> None:
    assert lcp_build.defines("x86_64") == ["cmake.define.GGML_NATIVE=ON"]
    assert lcp_build.defines("aarch64") == ["cmake.define.GGML_NATIVE=ON"]


def test_the_cache_key_follows_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"CHARLA_CACHE_DIR": "/cache"}
    before = lcp_build.wheel_dir(env)
    assert before.parent.as_posix() == "/cache/llama-cpp-python"
    monkeypatch.setattr(lcp_build, "defines", lambda: ["cmake.define.GGML_NATIVE=OFF"])
    flags_changed = lcp_build.wheel_dir(env)
    assert flags_changed != before
    (relative, old, new), = llamabuild.PATCHES
    monkeypatch.setattr(llamabuild, "PATCHES", ((relative, old, new + "// changed\n"),))
    assert lcp_build.wheel_dir(env) not in (before, flags_changed)


def _installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_eval: str) -> str:
    """A stand-in ``llama_cpp`` package first on the probe's path; ``on_eval`` runs at eval."""
    package = tmp_path / "site" / "llama_cpp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import os, signal\n"
        "class Llama:\n"
        "    def __init__(self, model_path, n_ctx, verbose): pass\n"
        "    def tokenize(self, text, add_bos): return list(text)\n"
        f"    def eval(self, tokens): {on_eval}\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site") + os.pathsep
                       + os.environ.get("PYTHONPATH", ""))
    lcp_build.require_working_build.cache_clear()
    return sys.executable


def test_a_build_that_dies_on_a_prompt_is_refused_before_measuring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = _installed(tmp_path, monkeypatch, "os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(RuntimeError, match=r"was killed by SIGSEGV .* on a short prompt; "
                                           r"install the bench's build.*bench\.lcp_build"):
        lcp_build.require_working_build(python)


def test_a_build_that_evaluates_the_prompt_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = _installed(tmp_path, monkeypatch, "return None")
    lcp_build.require_working_build(python)
