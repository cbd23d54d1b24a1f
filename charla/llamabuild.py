"""Build llama.cpp's ``llama-server`` once, from the source inside the llama-cpp-python sdist.

llama-cpp-python's own server answers one request at a time; llama.cpp's server batches
several chats in one forward pass (see docs/benchmarks.md). Its source ships vendored in the
llama-cpp-python sdist on PyPI, which is reachable from every machine we deploy from, so we
build the server from there and cache the binary outside the checkout: a clean clone (CI, a
second ``make run``) finds it in ``~/.cache/charla`` and skips the five-minute compile.

Run as ``python -m charla.llamabuild``: prints the binary's path on stdout, progress on stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# Only the server target; no network at build time (no prebuilt web UI, no curl, no openssl).
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=ON",
)

# llama.cpp's AMX kernels (built in whenever -march=native finds AMX: Sapphire Rapids and
# later) crash this version with SIGILL at the first prompt: the tile configuration they load
# is built on the stack and GCC drops it, so the next tile instruction faults (seen on a
# 2-core Xeon VM on 2026-11-30; upstream llama.cpp pull request 26954). They serve products of
# two rows and more (prompts, chats decoded together); the AVX-512/VNNI kernels take those too.
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def cmake_flags(machine: str | None = None) -> tuple[str, ...]:
    """The configure flags for this machine (``platform.machine()`` by default)."""
    if (machine or platform.machine()).lower() in ("x86_64", "amd64"):
        return (*CMAKE_FLAGS, f"-DCMAKE_C_FLAGS={_NO_AMX}", f"-DCMAKE_CXX_FLAGS={_NO_AMX}")
    return CMAKE_FLAGS


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """Where built binaries live: ``CHARLA_CACHE_DIR`` or ``~/.cache/charla``."""
    explicit = environ.get("CHARLA_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "charla"


def _cpu_fingerprint() -> str:
    """A native build uses the CPU's instruction set: key the cache on it."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    compiler = shutil.which("c++") or ""
    return hashlib.sha256(f"{platform.machine()}|{flags}|{compiler}".encode()).hexdigest()[:12]


def cache_key(recipe: Sequence[str]) -> str:
    """A cached build's folder name: the llama.cpp version, this CPU and the build flags, so
    a changed recipe or another CPU builds anew instead of reusing what was made otherwise."""
    flags = hashlib.sha256("\n".join(recipe).encode()).hexdigest()[:6]
    return f"{LLAMA_CPP_PYTHON_VERSION}-{_cpu_fingerprint()}-{flags}"


def binary_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The cached ``llama-server`` for this version, CPU and build recipe (it may not exist
    yet)."""
    return cache_root(environ) / "llama-server" / cache_key(cmake_flags()) / "llama-server"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(f"[llama-server] {message}", file=sys.stderr, flush=True)


def _download_sdist(workdir: Path) -> Path:
    _say(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} source from PyPI")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(workdir),
        ],
        check=True,
    )
    (archive,) = workdir.glob("llama_cpp_python-*.tar.gz")
    return archive


def _extract_vendor(archive: Path, workdir: Path) -> Path:
    prefix = archive.name.removesuffix(".tar.gz") + "/vendor/llama.cpp/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(workdir, members=members, filter="data")
    return workdir / prefix


def _run_with_progress(cmd: list[str]) -> None:
    """Run a build step, showing cmake's percentage instead of every compiler line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    last = -10
    for line in proc.stdout:
        tail = [*tail, line.rstrip()][-40:]
        match = re.match(r"\[\s*(\d+)%\]", line)
        if match and int(match.group(1)) >= last + 5:
            last = int(match.group(1))
            _say(f"compiling {last:3d}%")
    if proc.wait() != 0:
        print("\n".join(tail), file=sys.stderr)
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def build(environ: Mapping[str, str] = os.environ) -> Path:
    """Return the cached binary, building it first if needed (about 5 minutes on 2 cores)."""
    target = binary_path(environ)
    if target.exists():
        return target
    with locked(target.parent.parent / ".build.lock"):
        if target.exists():  # another process built it while we waited
            return target
        _say("building llama.cpp's server once; later runs reuse it from " + str(target.parent))
        jobs = str(os.cpu_count() or 2)
        with tempfile.TemporaryDirectory(prefix="charla-llama-") as tmp:
            work = Path(tmp)
            source = _extract_vendor(_download_sdist(work), work)
            build_dir = work / "build"
            _run_with_progress(["cmake", "-S", str(source), "-B", str(build_dir), *cmake_flags()])
            _run_with_progress(
                ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", jobs]
            )
            built = build_dir / "bin" / "llama-server"
            smoke_check(built)
            staging = target.with_name(target.name + ".partial")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built, staging)
            staging.replace(target)  # atomic: a reader never sees half a binary
        _say("built " + str(target))
    return target


def smoke_check(binary: Path, timeout_s: float = 120.0) -> None:
    """Start ``binary`` on the bundled model and wait until it says it is ready.

    llama-server runs a warm-up pass over the model before it answers its health check, so a
    binary that dies on this CPU (an instruction the CPU or its hypervisor refuses) dies here,
    with a clear error, instead of entering the cache and failing every later start."""
    from model_server.engines.llama_server import bundled_model_path, exit_reason, free_port

    _say("checking the new binary on the bundled model")
    port = free_port()
    cmd = [str(binary), "-m", str(bundled_model_path()), "--host", "127.0.0.1",
           "--port", str(port), "--ctx-size", "512", "--parallel", "1"]
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                code = proc.poll()
                if code is not None:
                    output.seek(0)
                    tail = output.read().decode(errors="replace").splitlines()[-20:]
                    print("\n".join(tail), file=sys.stderr)
                    raise RuntimeError(f"the built llama-server {exit_reason(code)} while "
                                       "loading the bundled model; it was not cached")
                with contextlib.suppress(OSError), urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
                time.sleep(0.2)
            raise RuntimeError(f"the built llama-server was not ready in {timeout_s:g} s")
        finally:
            proc.kill()
            proc.wait()


def main() -> None:
    print(build())


if __name__ == "__main__":
    main()
