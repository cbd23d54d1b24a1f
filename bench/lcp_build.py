"""llama-cpp-python for the benchmarks, built as ``llama-server`` is and cached per CPU.

The benchmarks compare the gateway with llama-cpp-python's own server and measure perplexity
with llama-cpp-python. pip's default build of it compiles for the CPU it runs on, and where
``-march=native`` finds AMX (Sapphire Rapids and later) that includes llama.cpp's AMX kernels,
which GCC 11 and 12 miscompile in this version (charla/llamabuild.py says how): on
2026-11-30's AMX-capable Xeon every prompt of more than one token crashed it with SIGSEGV in
``ggml_backend_amx_mul_mat``. So the wheel is built here from the sdist with
``llama-server``'s recipe: native, and with the same patch to llama.cpp's source, which also
keeps the comparison even (both sides run the same kernels).

pip's wheel cache keys a built wheel by its source alone, not by build flags, patches or CPU,
so a wheel made elsewhere or the default way could be picked up again; this one is built with
pip's cache off and kept under ``~/.cache/charla/llama-cpp-python/<version>-<cpu>-<recipe>/``.
``python -m bench.lcp_build`` prints the wheel's path, building it first if needed (about as
long as ``llama-server``'s build).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from charla.llamabuild import (
    LLAMA_CPP_PYTHON_VERSION,
    cache_key,
    cache_root,
    cmake_flags,
    download_sdist,
    locked,
    patch_vendor,
    recipe,
)

# Build flags given to llama-cpp-python's CMake: the CPU one of llama-server's recipe (the
# rest there selects llama-server's own targets).
_KEEP = ("-DGGML_NATIVE=",)


def defines(machine: str | None = None) -> list[str]:
    """pip ``--config-settings`` for scikit-build-core: one ``cmake.define`` per flag (a flag's
    value may hold spaces, which an environment variable such as CMAKE_ARGS would split)."""
    return [f"cmake.define.{flag.removeprefix('-D')}"
            for flag in cmake_flags(machine) if flag.startswith(_KEEP)]


def wheel_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return cache_root(environ) / "llama-cpp-python" / cache_key((*defines(), *recipe(server=False)))


def wheel(environ: Mapping[str, str] = os.environ) -> Path:
    """The cached wheel for this CPU and recipe, built first if it is not there."""
    target = wheel_dir(environ)
    with locked(target.parent / ".build.lock"):
        found = sorted(target.glob("llama_cpp_python-*.whl"))
        if found:
            return found[0]
        print(f"[llama-cpp-python] building {LLAMA_CPP_PYTHON_VERSION} for this CPU once; "
              f"later runs install it from {target}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="charla-lcp-", dir=target.parent) as tmp:
            work = Path(tmp)
            archive = download_sdist(work, label="llama-cpp-python")
            with tarfile.open(archive) as tar:
                tar.extractall(work, filter="data")
            source = work / archive.name.removesuffix(".tar.gz")
            patch_vendor(source / "vendor" / "llama.cpp", server=False)
            settings = [arg for define in defines() for arg in ("--config-settings", define)]
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--no-cache-dir", "--wheel-dir", str(work / "dist"), *settings, str(source)],
                check=True,
            )
            (built,) = (work / "dist").glob("llama_cpp_python-*.whl")
            target.mkdir(parents=True, exist_ok=True)
            return built.replace(target / built.name)


# Loads the model and evaluates a prompt of several tokens: the batched products, where an
# unpatched build with AMX dies.
_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
llm.eval(llm.tokenize(b"Charla keeps a team's chats on the team's own hardware.", add_bos=True))
print("ok")
"""


@functools.cache
def require_working_build(python: str = sys.executable) -> None:
    """Stop before a measurement when the installed llama-cpp-python dies on a short prompt
    (installed some other way than ``make bench``, e.g. pip's default build with llama.cpp's
    unpatched AMX kernels on a CPU with AMX): it would crash minutes into the run."""
    from model_server.engines.llama_server import bundled_model_path, exit_reason

    probe = subprocess.run([python, "-c", _PROBE, str(bundled_model_path())],
                           capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0 or probe.stdout.strip() != "ok":
        tail = "\n".join(probe.stderr.strip().splitlines()[-5:])
        raise RuntimeError(
            f"the installed llama-cpp-python {exit_reason(probe.returncode)} on a short "
            "prompt; install the bench's build instead: .venv/bin/pip install --no-deps "
            "--force-reinstall \"$(.venv/bin/python -m bench.lcp_build)\""
            + (f"\n{tail}" if tail else ""))


if __name__ == "__main__":
    print(wheel())
