"""The AMX on/off bench part's report and when it declines to measure (bench/amx.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import amx
from charla import llamabuild


def test_the_report_gives_each_ratio_from_its_own_figures() -> None:
    data = {"tok_s": {"AMX on": {"1": 200.0, "4": 300.0, "8": 400.0},
                      "AMX off (--no-repack)": {"1": 100.0, "4": 200.0, "8": 160.0}},
            "prompt_tokens": 1512,
            "first_token_ms": {"AMX on": 250.0, "AMX off (--no-repack)": 1000.0}}
    lines = amx.report_lines(data)
    assert "1,512-token prompt" in lines[0]
    assert "| 1 chat | 200 tok/s | 100 tok/s | 2.00x |" in lines
    assert "| 4 chats | 300 tok/s | 200 tok/s | 1.50x |" in lines
    assert "| 8 chats | 400 tok/s | 160 tok/s | 2.50x |" in lines
    assert lines[-1] == "| first token | 250 ms | 1000 ms | 4.00x faster |"


def test_a_skipped_part_says_why() -> None:
    assert amx.report_lines({"skipped": "this CPU has no AMX"}) == [
        "llama.cpp's AMX kernels: not measured, this CPU has no AMX."]


def test_a_binary_built_without_the_kernels_is_not_measured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "llama-server"
    without = "\n".join(llamabuild.cmake_flags("x86_64", amx=False))
    (tmp_path / "recipe.txt").write_text(f"native, without llama.cpp's AMX kernels\n{without}\n")
    monkeypatch.setattr(amx, "build", lambda: binary)
    monkeypatch.setattr(amx, "_cpu_flags", lambda: "flags : fpu avx512f amx_tile amx_int8")
    assert amx.skipped_because() == (
        "the cached llama-server was built without llama.cpp's AMX kernels")
    with_amx = "\n".join(llamabuild.cmake_flags("x86_64"))
    (tmp_path / "recipe.txt").write_text("native, with llama.cpp's AMX kernels where the CPU "
                                         f"has AMX\n{with_amx}\n")
    assert amx.skipped_because() is None
    monkeypatch.setattr(amx, "_cpu_flags", lambda: "flags : fpu avx2")
    assert amx.skipped_because() == "this CPU has no AMX"


def test_the_attention_report_compares_each_figure() -> None:
    from bench import attention

    side = {"first_ms": 2000.0, "second_ms": 400.0, "prompt_tokens": 1761.0,
            "deep_tok_s": 40.0, "tok_s": {"1": 200.0, "8": 400.0}}
    other = {"first_ms": 4000.0, "second_ms": 40.0, "prompt_tokens": 1761.0,
             "deep_tok_s": 90.0, "tok_s": {"1": 190.0, "8": 380.0}}
    lines = attention.report_lines({"on": side, "off": other})
    assert "1,761 prompt tokens" in lines[0]
    assert "| first turn, time to first token | 2,000 ms | 4,000 ms | 2.00 |" in lines
    assert "| second turn, time to first token | 400 ms | 40 ms | 0.10 |" in lines
    assert "| second / first | 0.200 | 0.010 | |" in lines
    assert "| decoding after the long prompt | 40 tok/s | 90 tok/s | 2.25 |" in lines
    assert "| short prompts, 8 chats | 400 tok/s | 380 tok/s | 0.95 |" in lines
