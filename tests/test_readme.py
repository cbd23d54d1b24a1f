"""The README's tables name every setting the code reads (issue 22 found four missing).

Every environment variable ``shared/settings.py`` reads, and every ``CHARLA_...`` name the
code uses anywhere, appears in README.md; the platform's own (AWS's, XDG's) are theirs to
document.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("shared", "charla", "functions", "model_server")
THEIRS = ("AWS_", "XDG_")


def read_names() -> set[str]:
    names = set(re.findall(r'\br\.\w+\(\s*"([A-Z][A-Z0-9_]+)"',
                           (ROOT / "shared" / "settings.py").read_text()))
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            names |= set(re.findall(r'"(CHARLA_[A-Z0-9_]+)"', text))
            names |= set(re.findall(r'environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"', text))
    return {n for n in names if not n.startswith(THEIRS)}


def test_every_setting_the_code_reads_is_in_the_readme() -> None:
    names = read_names()
    assert len(names) > 80  # the search found them: it is not looking at nothing
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme and n not in readme)
    assert not missing, f"README.md does not name {', '.join(missing)}"
