"""Every module stays under 400 lines (issue 23): one that grows past it holds more than one
thing, and is split by what its parts do, not cut in half.

Read from the files themselves: every ``.py`` file under the project's code folders and the
tests, the generated ones in ``__pycache__`` aside.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("functions", "shared", "model_server", "charla", "bench", "tests")
LIMIT = 400  # lines a module must stay under


def line_counts(root: Path, folders: tuple[str, ...] = FOLDERS) -> dict[str, int]:
    """Each module's path (relative to ``root``) and its number of lines."""
    counts = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                text = path.read_text(encoding="utf-8")
                counts[path.relative_to(root).as_posix()] = len(text.splitlines())
    return counts


def oversized(counts: dict[str, int], limit: int = LIMIT) -> list[str]:
    """``path: N lines`` for each module of ``limit`` lines or more, longest first."""
    return [f"{path}: {lines} lines" for path, lines in
            sorted(counts.items(), key=lambda item: (-item[1], item[0])) if lines >= limit]


def test_every_module_is_under_400_lines() -> None:
    counts = line_counts(ROOT)
    assert "tests/test_module_sizes.py" in counts and len(counts) > 100  # the walk found them
    assert oversized(counts) == []


def test_the_check_names_each_module_at_the_limit_or_over_it(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "small.py").write_text("x = 1\n" * (LIMIT - 1), encoding="utf-8")
    (tmp_path / "shared" / "edge.py").write_text("x = 1\n" * LIMIT, encoding="utf-8")
    (tmp_path / "tests" / "deep").mkdir(parents=True)
    (tmp_path / "tests" / "deep" / "big.py").write_text("x = 1\n" * 900, encoding="utf-8")
    (tmp_path / "tests" / "__pycache__").mkdir()
    (tmp_path / "tests" / "__pycache__" / "cached.py").write_text("x\n" * 999, encoding="utf-8")
    counts = line_counts(tmp_path, ("shared", "tests"))
    assert oversized(counts) == ["tests/deep/big.py: 900 lines", "shared/edge.py: 400 lines"]
