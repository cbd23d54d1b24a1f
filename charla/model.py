"""``charla model fetch``: a GGUF model from a model hub, for a GPU host that can reach one.

The bundled model answers on any CPU, but is small; a team's GPU host runs a 7-8B instruct
model (README, "A real model on a GPU host"). This fetches one file of a hub repository with
huggingface_hub (which honours ``HF_ENDPOINT`` for a mirror or a hub of the team's own, and
``HF_TOKEN`` for a gated model), checks that it is a GGUF file, and says what to set.
Nothing here runs on the functions' side or on a machine without access to a hub.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

GGUF_MAGIC = b"GGUF"
DEFAULT_DIR = Path("~/.cache/charla/models")


def fetch(repo: str, filename: str, *, revision: str = "main",
          folder: Path = DEFAULT_DIR) -> Path:
    """Download ``filename`` of the model repository ``repo`` into ``folder`` (kept there:
    a second fetch of the same revision downloads nothing); the file's path."""
    if not filename.endswith(".gguf"):
        raise ConfigError(f"{filename}: llama-server reads GGUF files (name ending in .gguf)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    target = folder.expanduser() / repo.replace("/", "--")
    try:
        path = Path(hf_hub_download(repo, filename, revision=revision, local_dir=target))
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise ConfigError(f"{repo} has no file {filename} at {revision} on {endpoint} (or it is"
                          " gated: set HF_TOKEN)") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ConfigError(f"could not fetch {repo}/{filename} from {endpoint}: "
                          f"{type(exc).__name__}") from None
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            path.unlink()
            raise ConfigError(f"{repo}/{filename} is not a GGUF file; removed")
    return path


def _fetch(args: argparse.Namespace) -> int:
    """Prints ``CHARLA_MODEL_PATH=...`` (``export "$(charla model fetch ...)"`` sets it)."""
    path = fetch(args.repo, args.file, revision=args.revision, folder=Path(args.dir))
    print(f"charla: {path.stat().st_size / 2**30:.2f} GiB in {path}", file=sys.stderr)
    print(f"CHARLA_MODEL_PATH={path}")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("model", help="models for the model server")
    verbs = p.add_subparsers(dest="verb", required=True)
    f = verbs.add_parser("fetch", help="download a GGUF file from a model hub (HF_ENDPOINT)")
    f.add_argument("repo", help="the repository, e.g. bartowski/Meta-Llama-3.1-8B-Instruct-GGUF")
    f.add_argument("file", help="the GGUF file in it, e.g. Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf")
    f.add_argument("--revision", default="main", help="a branch, tag or commit (default main)")
    f.add_argument("--dir", default=str(DEFAULT_DIR), help="where models go (default %(default)s)")
    f.set_defaults(func=_fetch)
