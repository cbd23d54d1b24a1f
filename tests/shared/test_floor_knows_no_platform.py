"""The floor (``shared/``) holds no chat platform's behaviour: what one platform does lives in
its folder under ``functions/`` (functions/platform.py).

Read from the code itself, not its prose: every name, attribute and string under ``shared/``
that names Slack, Telegram or Discord is a finding, but for the few places that may name them:
the principal namespaces that export and forget accept and the catalogue of stored tables
(shared/privacy.py), the secret formats redaction knows (shared/redact.py), and the settings
read from the environment (shared/settings.py), which compute nothing about a platform.
"""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
PLATFORM_NAMES = ("slack", "telegram", "discord")

# (module, top-level name) that may name a platform.
ALLOWED = {
    ("privacy.py", "PLATFORMS"),  # the namespaces of principals: slack:U123, telegram:42...
    ("privacy.py", "TABLES"),  # what each table holds, for export and the privacy notice
    ("redact.py", "_SECRETS"),  # token formats: xoxb-, hooks.slack.com, Discord bot tokens
    ("settings.py", "Settings"),  # SLACK_BOT_TOKEN and the like, read; see below
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _words(node: ast.AST, docs: set[int]) -> list[str]:
    """The names and strings ``node`` holds (docstrings aside)."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and id(sub) not in docs:
            found.append(sub.value)
        elif isinstance(sub, ast.Name):
            found.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.append(sub.attr)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(sub.name)
        elif isinstance(sub, ast.arg):
            found.append(sub.arg)
        elif isinstance(sub, ast.alias):
            found.append(sub.name)
    return found


def _named(statement: ast.stmt) -> list[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        return [t.id for t in statement.targets if isinstance(t, ast.Name)]
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id]
    return []


def findings(root: Path) -> list[str]:
    """``module:line: word`` for each place under ``root`` that names a platform where it
    may not."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for statement in tree.body:
            if any((module, name) in ALLOWED for name in _named(statement)):
                continue
            for word in _words(statement, docs):
                if any(name in word.lower() for name in PLATFORM_NAMES):
                    found.append(f"{module}:{statement.lineno}: {word[:60]!r}")
    return found


def test_no_module_under_shared_holds_a_platforms_behaviour() -> None:
    assert findings(SHARED) == []


def test_the_settings_read_a_platforms_variables_and_decide_nothing_about_it() -> None:
    """Whether a platform is on is its description's to say (functions/platform.py)."""
    tree = ast.parse((SHARED / "settings.py").read_text(encoding="utf-8"))
    [settings] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    methods = [n.name for n in ast.walk(settings)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert [m for m in methods if any(name in m for name in PLATFORM_NAMES)] == []


def test_the_check_finds_a_platform_named_in_code_but_not_in_prose(tmp_path: Path) -> None:
    (tmp_path / "floor.py").write_text(
        '"""Slack retries a delivery; so does Telegram."""\n'
        "# Discord too\n"
        "MARKS = 'INSERT INTO slack_threads (digest) VALUES (%s)'\n"
        "def on(settings):\n"
        "    return settings.telegram_bot_token is not None\n", encoding="utf-8")
    assert findings(tmp_path) == ["floor.py:3: 'INSERT INTO slack_threads (digest) VALUES (%s)'",
                                  "floor.py:4: 'telegram_bot_token'"]
