"""Building llama-server: the recipe, its cache key, and the check a new binary must pass."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from charla import llamabuild
from model_server.engines.base import EngineUnavailable
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path, exit_reason

AMX_FLAGS = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")


def _flag(flags: tuple[str, ...], name: str) -> str:
    return next(f for f in flags if f.startswith(f"-D{name}=")).split("=", 1)[1]


def test_x86_builds_keep_the_amx_kernels_first_and_can_leave_them_out() -> None:
    assert llamabuild.cmake_flags("x86_64") == llamabuild.CMAKE_FLAGS
    assert "-DGGML_NATIVE=ON" in llamabuild.CMAKE_FLAGS
    without = llamabuild.cmake_flags("x86_64", amx=False)
    for language in ("CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS"):
        assert set(AMX_FLAGS) <= set(_flag(without, language).split())


def test_other_machines_get_no_x86_compiler_flags() -> None:
    for amx in (True, False):
        flags = llamabuild.cmake_flags("aarch64", amx=amx)
        assert not any("amx" in f for f in flags)
        assert flags == llamabuild.CMAKE_FLAGS
    patches = len(llamabuild.PATCHES) + len(llamabuild.SERVER_PATCHES)
    assert len(llamabuild.recipe("aarch64")) == 1 + patches
    assert len(llamabuild.recipe("x86_64")) == 2 + patches
    assert len(llamabuild.recipe("x86_64", server=False)) == 2 + len(llamabuild.PATCHES)


def test_a_changed_recipe_is_a_different_cache_entry(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    env = {"CHARLA_CACHE_DIR": str(tmp_path)}
    before = llamabuild.binary_path(env)
    assert llamabuild.binary_path(env) == before  # stable
    monkeypatch.setattr(llamabuild, "CMAKE_FLAGS", (*llamabuild.CMAKE_FLAGS, "-DGGML_LTO=ON"))
    after = llamabuild.binary_path(env)
    assert after != before
    assert after.parent.parent == before.parent.parent == tmp_path / "llama-server"
    (relative, old, new), = llamabuild.PATCHES
    monkeypatch.setattr(llamabuild, "PATCHES", ((relative, old, new + "// changed\n"),))
    assert llamabuild.binary_path(env) not in (before, after)


# The vendored function as llama-cpp-python 0.3.36 ships it, cut down.
_TILE_CONFIG_INIT = """inline void ggml_tile_config_init(void) {
    alignas(64) tile_config_t tc = {};
    tc.palette_id = 1;
    tc.rows[0] = 8;   tc.colsb[0] = 64;
    _tile_loadconfig(&tc);
    done = true;
}
"""


def test_the_tile_configuration_is_loaded_as_a_whole(tmp_path: Path) -> None:
    source = tmp_path / "ggml/src/ggml-cpu/amx/mmq.cpp"
    source.parent.mkdir(parents=True)
    source.write_text(_TILE_CONFIG_INIT)
    llamabuild.patch_vendor(tmp_path, server=False)
    patched = source.read_text()
    assert "_tile_loadconfig" not in patched
    assert '    __asm__ volatile("ldtilecfg %0" : : "m"(tc));\n    done = true;' in patched
    assert patched.startswith(_TILE_CONFIG_INIT.split("    _tile_loadconfig")[0])


def test_a_patch_that_no_longer_matches_stops_the_build(tmp_path: Path) -> None:
    source = tmp_path / "ggml/src/ggml-cpu/amx/mmq.cpp"
    source.parent.mkdir(parents=True)
    source.write_text(_TILE_CONFIG_INIT.replace("_tile_loadconfig(&tc)", "load(&tc)"))
    with pytest.raises(RuntimeError, match=r"cannot patch ggml/src/ggml-cpu/amx/mmq\.cpp: "
                                           r"expected '_tile_loadconfig\(&tc\);' once, found "
                                           r"it 0 times"):
        llamabuild.patch_vendor(tmp_path, server=False)
    assert "load(&tc)" in source.read_text()  # left as it was


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_the_patched_statement_keeps_the_configurations_stores(tmp_path: Path) -> None:
    """Compiled as the build compiles it (-O3, AMX on), the patched function still writes
    the tiles' rows and widths before loading them; unpatched, GCC 12 drops them."""
    source = tmp_path / "ggml/src/ggml-cpu/amx/mmq.cpp"
    source.parent.mkdir(parents=True)
    struct = ("#include <immintrin.h>\n#include <cstdint>\n"
              "struct tile_config_t { uint8_t palette_id = 0; uint8_t start_row = 0;\n"
              "  uint8_t reserved_0[14] = {0}; uint16_t colsb[16] = {0};\n"
              "  uint8_t rows[16] = {0}; };\nbool done;\n")
    # Not inline, so that the compiler emits it.
    source.write_text(struct + _TILE_CONFIG_INIT.removeprefix("inline "))
    llamabuild.patch_vendor(tmp_path, server=False)
    listing = subprocess.run(
        ["g++", "-O3", "-mamx-tile", "-S", "-o", "-", "-x", "c++", str(source)],
        capture_output=True, text=True, check=True).stdout
    before_load = listing.split("ldtilecfg")[0]
    # colsb[0] = 64 and rows[0] = 8, each stored as an immediate (their neighbours are zero).
    assert re.search(r"\tmov\w*\t\$64,", before_load), before_load
    assert re.search(r"\tmov\w*\t\$8,", before_load), before_load


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


def _fake_server(tmp_path: Path, on_prompt: str) -> Path:
    """A stand-in llama-server: ready at once, then ``on_prompt`` (Python) on a POST."""
    path = tmp_path / "llama-server"
    path.write_text(f"""#!{sys.executable}
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{{}}")

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        {on_prompt}

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler).serve_forever()
""")
    path.chmod(0o755)
    return path


def _answering(content: str) -> str:
    body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    return ("self.send_response(200); self.end_headers(); "
            f"self.wfile.write({json.dumps(body).encode()!r})")


def test_a_binary_that_crashes_at_its_first_prompt_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The AMX build's fault: ready and healthy, then dead at the first prompt."""
    crashing = _fake_server(tmp_path, "print('tile fault', flush=True); "
                                      "os.kill(os.getpid(), signal.SIGILL)")
    with pytest.raises(RuntimeError, match=r"killed by SIGILL \(Illegal instruction\) while "
                                           r"answering its first prompt; it was not cached"):
        llamabuild.smoke_check(crashing, timeout_s=10)
    assert "tile fault" in capsys.readouterr().err


def test_a_binary_that_answers_its_first_prompt_with_nothing_is_refused(tmp_path: Path) -> None:
    empty = _fake_server(tmp_path, _answering(" "))
    with pytest.raises(RuntimeError, match="answered its first prompt with no text"):
        llamabuild.smoke_check(empty, timeout_s=10)


def test_a_binary_that_refuses_its_first_prompt_is_refused(tmp_path: Path) -> None:
    failing = _fake_server(tmp_path, "self.send_response(500); self.end_headers()")
    with pytest.raises(RuntimeError, match=r"failed its first prompt \(HTTP Error 500.*\); "
                                           r"it was not cached"):
        llamabuild.smoke_check(failing, timeout_s=10)


def test_a_binary_that_answers_its_first_prompt_passes(tmp_path: Path) -> None:
    fine = _fake_server(tmp_path, _answering("Data"))
    llamabuild.smoke_check(fine, timeout_s=10)


def test_the_built_binary_passes_the_check(llama_server_bin: Path) -> None:
    llamabuild.smoke_check(llama_server_bin)


def _fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: set[int]
                ) -> tuple[dict[str, str], list[list[str]]]:
    """build() with the download, the compiler and the check replaced: the checks of the
    attempts numbered in ``failing`` raise as a crashing binary's would."""
    source = tmp_path / "src"
    _vendor_tree(source)
    commands: list[list[str]] = []

    def run(cmd: list[str]) -> None:
        commands.append(cmd)
        if "--build" in cmd:
            binary = Path(cmd[cmd.index("--build") + 1]) / "bin" / "llama-server"
            binary.parent.mkdir(parents=True)
            binary.write_text(f"built in {binary.parent.parent.name}")

    def check(binary: Path) -> None:
        if int(binary.parent.parent.name.removeprefix("build-")) in failing:
            raise RuntimeError("the built llama-server was killed by SIGILL (Illegal "
                               "instruction) while answering its first prompt; it was not cached")

    monkeypatch.setattr(llamabuild, "download_sdist", lambda work: work / "sdist.tar.gz")
    monkeypatch.setattr(llamabuild, "_extract_vendor", lambda archive, work: source)
    monkeypatch.setattr(llamabuild, "_run_with_progress", run)
    monkeypatch.setattr(llamabuild, "smoke_check", check)
    monkeypatch.setattr(llamabuild.platform, "machine", lambda: "x86_64")
    return {"CHARLA_CACHE_DIR": str(tmp_path / "cache")}, commands


def test_a_failed_amx_build_is_followed_by_one_without_the_kernels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env, commands = _fake_build(tmp_path, monkeypatch, failing={1})
    binary = llamabuild.build(env)
    assert binary == llamabuild.binary_path(env)
    assert binary.read_text() == "built in build-2"
    what, *flags = (binary.parent / "recipe.txt").read_text().splitlines()
    assert what == "native, without llama.cpp's AMX kernels"
    assert tuple(flags) == llamabuild.cmake_flags("x86_64", amx=False)
    configures = [cmd for cmd in commands if "-S" in cmd]
    assert [c[c.index("-B") + 1].rsplit("/", 1)[1] for c in configures] == ["build-1", "build-2"]
    assert not any("amx" in flag for flag in configures[0] if flag.startswith("-D"))
    assert "killed by SIGILL" in capsys.readouterr().err
    assert "__asm__ volatile" in (tmp_path / "src/ggml/src/ggml-cpu/amx/mmq.cpp").read_text()


def test_a_build_whose_every_attempt_fails_caches_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, _commands = _fake_build(tmp_path, monkeypatch, failing={1, 2})
    with pytest.raises(RuntimeError, match="killed by SIGILL"):
        llamabuild.build(env)
    assert not llamabuild.binary_path(env).exists()
    assert not (llamabuild.binary_path(env).parent / "recipe.txt").exists()


def test_a_build_that_passes_at_once_is_cached_with_the_amx_kernels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, commands = _fake_build(tmp_path, monkeypatch, failing=set())
    binary = llamabuild.build(env)
    assert binary.read_text() == "built in build-1"
    assert (binary.parent / "recipe.txt").read_text().startswith(
        "native, with llama.cpp's AMX kernels")
    assert len([cmd for cmd in commands if "--build" in cmd]) == 1
    assert llamabuild.build(env) == binary  # cached: nothing built again
    assert len([cmd for cmd in commands if "--build" in cmd]) == 1


def test_the_cached_binary_says_how_it_was_built(llama_server_bin: Path) -> None:
    what, *flags = (llama_server_bin.parent / "recipe.txt").read_text().splitlines()
    assert tuple(flags) in {llamabuild.cmake_flags(), llamabuild.cmake_flags(amx=False)}
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " amx_int8" in cpu and platform.machine() == "x86_64":
        # The patched AMX kernels pass the check here; no fallback was needed.
        assert what.startswith("native, with llama.cpp's AMX kernels"), what
        if shutil.which("objdump"):
            listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn",
                                      str(llama_server_bin)],
                                     capture_output=True, text=True, check=True).stdout
            assert "ldtilecfg" in listing and "tdpb" in listing


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


# The vendored function as llama-cpp-python 0.3.36 ships it, cut down.
_RECV_WITH_TIMEOUT = """server_task_result_ptr server_response::recv_with_timeout(\
const std::unordered_set<int> & id_tasks, int timeout) {
    while (true) {
        std::unique_lock<std::mutex> lock(mutex_results);
        std::cv_status cr_res = condition_results.wait_for(lock, std::chrono::seconds(timeout));
        if (cr_res == std::cv_status::timeout) {
            return nullptr;
        }
    }
}
"""


def test_a_wait_for_results_has_one_deadline(tmp_path: Path) -> None:
    """llama-server's wait for a request's results runs out a second after it began, however
    many other results wake it; before, each restarted it (tests/model_server shows a whole
    answer stopping on a busy engine)."""
    _vendor_tree(tmp_path)
    llamabuild.patch_vendor(tmp_path)
    patched = (tmp_path / "tools/server/server-queue.cpp").read_text()
    head, loop = patched.split("    while (true) {\n")
    assert "const auto deadline = std::chrono::steady_clock::now() + " \
           "std::chrono::seconds(timeout);" in head
    assert "condition_results.wait_until(lock, deadline);" in loop
    assert "wait_for" not in patched


def _vendor_tree(root: Path) -> None:
    """The files the patches change, cut down, where an extracted llama.cpp has them."""
    for relative, text in (("ggml/src/ggml-cpu/amx/mmq.cpp", _TILE_CONFIG_INIT),
                           ("tools/server/server-queue.cpp", _RECV_WITH_TIMEOUT)):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
