"""Precision and recall of the redactor, per kind, on a labelled bilingual set.

``pii_eval.jsonl`` holds Spanish and English snippets, each with the personal data and
credentials a reader would hide, and many that hold none but look close: order and invoice
numbers, dates, times, prices, versions, tracking numbers, numbers that fail their check
digits. A finding counts when its exact text is labelled with the same kind in that snippet.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.redact import Redactor
from shared.redact_findings import KINDS

EVAL = Path(__file__).with_name("pii_eval.jsonl")
FLOOR = 0.95


def _snippets() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]


def _scores(redactor: Redactor) -> tuple[dict[str, Counter[str]], list[str]]:
    """True positives, false positives and false negatives per kind, and each mistake."""
    counts = {kind: Counter[str]() for kind in KINDS}
    mistakes: list[str] = []
    for snippet in _snippets():
        text = str(snippet["text"])
        labelled = Counter((e["kind"], e["text"]) for e in snippet["entities"])
        found = Counter((f.kind, text[f.start:f.end]) for f in redactor.find(text))
        for (kind, value), n in (labelled | found).items():
            hit = min(labelled[kind, value], found[kind, value])
            counts[kind]["tp"] += hit
            counts[kind]["fp"] += found[kind, value] - hit
            counts[kind]["fn"] += labelled[kind, value] - hit
            if hit < n:
                mistakes.append(f"{kind} {value!r} labelled {labelled[kind, value]}, "
                                f"found {found[kind, value]}: {text!r}")
    return counts, mistakes


def _table(counts: dict[str, Counter[str]]) -> tuple[str, dict[str, tuple[float, float]]]:
    lines = ["kind    labelled  precision  recall"]
    rates: dict[str, tuple[float, float]] = {}
    for kind, c in counts.items():
        found, labelled = c["tp"] + c["fp"], c["tp"] + c["fn"]
        precision = c["tp"] / found if found else 1.0
        recall = c["tp"] / labelled if labelled else 1.0
        rates[kind] = (precision, recall)
        lines.append(f"{kind:<7} {labelled:>8}  {precision:>9.3f}  {recall:>6.3f}")
    return "\n".join(lines), rates


def test_the_set_is_large_and_bilingual() -> None:
    snippets = _snippets()
    assert len(snippets) >= 100
    assert {s["lang"] for s in snippets} == {"es", "en"}
    negatives = [s for s in snippets if not s["entities"]]
    assert len(negatives) >= 30
    kinds = Counter(e["kind"] for s in snippets for e in s["entities"])
    assert set(kinds) == set(KINDS)
    for snippet in snippets:  # every label is text of its own snippet
        for entity in snippet["entities"]:
            assert entity["text"] in snippet["text"]


def test_precision_and_recall_per_kind() -> None:
    counts, mistakes = _scores(Redactor(regions=("ES", "US")))
    table, rates = _table(counts)
    below = [k for k, (p, r) in rates.items() if p < FLOOR or r < FLOOR]
    if below:
        pytest.fail(f"below {FLOOR} for {', '.join(below)}\n{table}\n" + "\n".join(mistakes))
