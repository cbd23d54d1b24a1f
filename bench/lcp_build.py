"""llama-cpp-python for the benchmarks, built as ``llama-server`` is and cached per CPU.

The benchmarks compare the gateway with llama-cpp-python's own server and measure perplexity
with llama-cpp-python. pip's default build of it compiles for the CPU it runs on, and where
``-march=native`` finds AMX (Sapphire Rapids and later) that includes llama.cpp's AMX kernels,
which this version gets wrong (charla/llamabuild.py says how): on 2026-11-30's AMX-capable
Xeon every prompt of more than one token crashed it with SIGSEGV in
``ggml_backend_amx_mul_mat``, so llama-cpp-python's server died at the first chat and the
comparison could not run. So the wheel is built here with the same recipe as ``llama-server``
(native, AMX off on x86-64), which also keeps the comparison even: both sides are compiled
for the same instruction set.

pip's wheel cache keys a built wheel by its source alone, not by build flags or CPU, so a
wheel made elsewhere or the default way could be picked up again; this one is built with
pip's cache off and kept under ``~/.cache/charla/llama-cpp-python/<version>-<cpu>-<recipe>/``.
``python -m bench.lcp_build`` prints the wheel's path, building it first if needed (about as
long as ``llama-server``'s build).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from charla.llamabuild import LLAMA_CPP_PYTHON_VERSION, cache_key, cache_root, cmake_flags, locked

# Build flags given to llama-cpp-python's CMake: the CPU and AMX ones of llama-server's recipe
# (the rest there selects llama-server's own targets).
_KEEP = ("-DGGML_NATIVE=", "-DCMAKE_C_FLAGS=", "-DCMAKE_CXX_FLAGS=")


def defines(machine: str | None = None) -> list[str]:
    """pip ``--config-settings`` for scikit-build-core: one ``cmake.define`` per flag (a flag's
    value may hold spaces, which an environment variable such as CMAKE_ARGS would split)."""
    return [f"cmake.define.{flag.removeprefix('-D')}"
            for flag in cmake_flags(machine) if flag.startswith(_KEEP)]


def wheel_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return cache_root(environ) / "llama-cpp-python" / cache_key(defines())


def wheel(environ: Mapping[str, str] = os.environ) -> Path:
    """The cached wheel for this CPU and recipe, built first if it is not there."""
    target = wheel_dir(environ)
    with locked(target.parent / ".build.lock"):
        found = sorted(target.glob("llama_cpp_python-*.whl"))
        if found:
            return found[0]
        print(f"[llama-cpp-python] building {LLAMA_CPP_PYTHON_VERSION} for this CPU, without "
              f"AMX, once; later runs install it from {target}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="charla-lcp-", dir=target.parent) as tmp:
            settings = [arg for define in defines() for arg in ("--config-settings", define)]
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--no-cache-dir", "--no-binary", "llama-cpp-python", "--wheel-dir", tmp,
                 *settings, f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
                check=True,
            )
            (built,) = Path(tmp).glob("llama_cpp_python-*.whl")
            target.mkdir(parents=True, exist_ok=True)
            return built.replace(target / built.name)


def require_no_amx() -> None:
    """Stop before a measurement when the installed llama-cpp-python has llama.cpp's AMX
    kernels compiled in (installed some other way than ``make bench``): it would crash at the
    first prompt on a CPU with AMX, minutes into the run."""
    import llama_cpp

    info: bytes = llama_cpp.llama_print_system_info()
    if b"AMX_INT8 = 1" in info:
        raise RuntimeError(
            "the installed llama-cpp-python was built with llama.cpp's AMX kernels, which "
            "crash at the first prompt; install the bench's build instead: .venv/bin/pip "
            "install --no-deps --force-reinstall \"$(.venv/bin/python -m bench.lcp_build)\"")


if __name__ == "__main__":
    print(wheel())
