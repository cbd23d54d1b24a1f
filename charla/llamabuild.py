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
import json
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
# later) load their tile configuration with ``_tile_loadconfig(&tc)`` from a struct on the stack.
# GCC 11 and 12 declare that intrinsic as reading only 8 bytes, so the optimiser drops the stores
# that set the tiles' rows and widths, and the first tile instruction faults (SIGILL, or SIGSEGV
# when the leftover bytes make an invalid configuration; seen on 2026-11-30's AMX-capable Xeon).
# The patch loads the configuration with an asm statement that reads the whole 64-byte struct.
# With it the AMX kernels run and give the same perplexity as the AVX-512 ones, and about twice
# their speed here (docs/benchmarks.md).
PATCHES: tuple[tuple[str, str, str], ...] = (
    ("ggml/src/ggml-cpu/amx/mmq.cpp",
     "    _tile_loadconfig(&tc);\n",
     "    // charla: the whole struct is an input; GCC 11/12's intrinsic declares 8 bytes\n"
     '    __asm__ volatile("ldtilecfg %0" : : "m"(tc));\n'),
)

# llama-server's own, which llama-cpp-python's build (bench/lcp_build.py) does not need.
# A request waiting for its results (a whole answer, or a stream between tokens) looks at its
# connection when a one-second wait for them runs out; but every result for any request wakes
# the wait, which then starts again from a full second. So on a busy engine a whole answer whose
# caller has gone is never looked at and is written to its end, holding a slot. The patch gives
# the wait one deadline: the connection is looked at every second, whatever else is answered.
_RECV = "tools/server/server-queue.cpp"
SERVER_PATCHES: tuple[tuple[str, str, str], ...] = (
    (_RECV,
     "server_task_result_ptr server_response::recv_with_timeout(const std::unordered_set<int> "
     "& id_tasks, int timeout) {\n",
     "server_task_result_ptr server_response::recv_with_timeout(const std::unordered_set<int> "
     "& id_tasks, int timeout) {\n"
     "    // charla: one deadline for the whole wait; other requests' results do not extend it\n"
     "    const auto deadline = std::chrono::steady_clock::now() + "
     "std::chrono::seconds(timeout);\n"),
    (_RECV,
     "condition_results.wait_for(lock, std::chrono::seconds(timeout));\n",
     "condition_results.wait_until(lock, deadline);\n"),
)

# A build without the AMX kernels, tried when the one with them fails its check on this CPU.
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def _is_x86_64(machine: str | None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64")


def cmake_flags(machine: str | None = None, *, amx: bool = True) -> tuple[str, ...]:
    """The configure flags for this machine (``platform.machine()`` by default); with
    ``amx=False``, an x86-64 build leaves llama.cpp's AMX kernels out."""
    if not amx and _is_x86_64(machine):
        return (*CMAKE_FLAGS, f"-DCMAKE_C_FLAGS={_NO_AMX}", f"-DCMAKE_CXX_FLAGS={_NO_AMX}")
    return CMAKE_FLAGS


def _patches(server: bool) -> tuple[tuple[str, str, str], ...]:
    return (*PATCHES, *SERVER_PATCHES) if server else PATCHES


def patch_vendor(source: Path, *, server: bool = True) -> None:
    """Apply PATCHES (and SERVER_PATCHES, unless ``server`` is False) to an extracted llama.cpp
    tree; a patch that no longer matches exactly once (another llama.cpp version) stops the
    build instead of building unpatched code."""
    for relative, old, new in _patches(server):
        path = source / relative
        text = path.read_text()
        if text.count(old) != 1:
            raise RuntimeError(f"cannot patch {relative}: expected {old.strip()!r} once, found "
                               f"it {text.count(old)} times; update charla/llamabuild.PATCHES")
        path.write_text(text.replace(old, new))


def _attempts(machine: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """The builds to try, in order: what each is, and its flags."""
    flags = cmake_flags(machine)
    if not _is_x86_64(machine):
        return [("native", flags)]
    return [("native, with llama.cpp's AMX kernels where the CPU has AMX", flags),
            ("native, without llama.cpp's AMX kernels", cmake_flags(machine, amx=False))]


def recipe(machine: str | None = None, *, server: bool = True) -> tuple[str, ...]:
    """What a build depends on besides the version and the CPU: the flags of each attempt, in
    order, and the patches (``server``: llama-server's own too)."""
    patches = [f"patch {rel} {hashlib.sha256(new.encode()).hexdigest()[:12]}"
               for rel, _old, new in _patches(server)]
    return (*[" ".join(flags) for _what, flags in _attempts(machine)], *patches)


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
    return cache_root(environ) / "llama-server" / cache_key(recipe()) / "llama-server"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str, label: str = "llama-server") -> None:
    print(f"[{label}] {message}", file=sys.stderr, flush=True)


def download_sdist(workdir: Path, label: str = "llama-server") -> Path:
    _say(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} source from PyPI", label)
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
    """Return the cached binary, building it first if needed (about 5 minutes on 2 cores).

    On x86-64 a build whose binary fails :func:`smoke_check` is followed by one without the
    AMX kernels; the flags the cached binary was built with are written beside it."""
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
            source = _extract_vendor(download_sdist(work), work)
            patch_vendor(source)
            attempts = _attempts()
            for number, attempt in enumerate(attempts, 1):
                what, flags = attempt
                build_dir = work / f"build-{number}"
                _run_with_progress(["cmake", "-S", str(source), "-B", str(build_dir), *flags])
                _run_with_progress(
                    ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", jobs]
                )
                built = build_dir / "bin" / "llama-server"
                try:
                    smoke_check(built)
                except RuntimeError as failed:
                    if number == len(attempts):
                        raise
                    _say(f"{failed}; building again, {attempts[number][0]}")
                    continue
                break
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_name("recipe.txt").write_text(f"{what}\n" + "\n".join(flags) + "\n")
            staging = target.with_name(target.name + ".partial")
            shutil.copy2(built, staging)
            staging.replace(target)  # atomic: a reader never sees half a binary
        _say("built " + str(target))
    return target


# Long enough to take the batched kernels (a product of more than one row), which a crashing
# build died in at the first prompt while its health check had passed.
_SMOKE_PROMPT = ("Charla answers a team's questions on its own hardware. Describe in two "
                 "sentences why a company would keep its chat assistant inside its network.")


def smoke_check(binary: Path, timeout_s: float = 120.0) -> None:
    """Start ``binary`` on the bundled model, wait until it is ready, and have it answer a
    prompt of some forty tokens.

    A binary that dies on this CPU (an instruction the CPU or its hypervisor refuses, a kernel
    that faults) dies here, with a clear error, instead of entering the cache and failing
    every later start."""
    from model_server.engines.llama_server import bundled_model_path, exit_reason
    from shared.ports import free_port

    _say("checking the new binary on the bundled model")
    port = free_port()
    cmd = [str(binary), "-m", str(bundled_model_path()), "--host", "127.0.0.1",
           "--port", str(port), "--ctx-size", "512", "--parallel", "1"]
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=output, stderr=output)

        def died(stage: str) -> RuntimeError:
            output.seek(0)
            tail = output.read().decode(errors="replace").splitlines()[-20:]
            print("\n".join(tail), file=sys.stderr)
            return RuntimeError(f"the built llama-server {exit_reason(proc.returncode)} while "
                                f"{stage}; it was not cached")

        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise died("loading the bundled model")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the built llama-server was not ready in {timeout_s:g} s")
                with contextlib.suppress(OSError), urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
                time.sleep(0.2)
            body = json.dumps({"messages": [{"role": "user", "content": _SMOKE_PROMPT}],
                               "max_tokens": 8, "temperature": 0}).encode()
            try:
                with urllib.request.urlopen(urllib.request.Request(
                        f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                        headers={"Content-Type": "application/json"}), timeout=timeout_s
                        ) as answer:
                    content = json.load(answer)["choices"][0]["message"]["content"]
            except (OSError, ValueError, LookupError, TypeError) as failed:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2)  # a crash reaps at once; a live server stays
                if proc.returncode is not None:
                    raise died("answering its first prompt") from None
                raise RuntimeError(f"the built llama-server failed its first prompt "
                                   f"({failed}); it was not cached") from None
            if not isinstance(content, str) or not content.strip():
                raise RuntimeError("the built llama-server answered its first prompt with "
                                   "no text; it was not cached")
        finally:
            proc.kill()
            proc.wait()


def main() -> None:
    print(build())


if __name__ == "__main__":
    main()
