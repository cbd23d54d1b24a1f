"""Redaction of a 1,000-character message: Charla's redactor against Presidio built by hand.

The message is Spanish and English and holds seven things to hide: an e-mail address, two
phone numbers, a card, an IBAN, a DNI and an AWS access key id. Each side reports p50 and p95
per message, how many of the seven it found (and anything else it flagged), its import time
in a fresh interpreter, whether it tried to reach the network, and its precision and recall
on the personal-data kinds of ``tests/privacy/pii_eval.jsonl``.

Presidio is not a dependency: it is measured in a separate interpreter named by
``CHARLA_BENCH_PRESIDIO_PYTHON``, and skipped when that is unset. This file runs under that
interpreter too (``--presidio``), so it imports nothing from the project at module level::

    python3 -m venv /tmp/presidio && /tmp/presidio/bin/pip install presidio-analyzer==2.2.366
    CHARLA_BENCH_PRESIDIO_PYTHON=/tmp/presidio/bin/python .venv/bin/python -m bench.run redaction

Presidio is built the only way it works offline: its default ``AnalyzerEngine()`` fetches a
spaCy model's compatibility table and fails, and its e-mail recognizer fetches the public
suffix list unless ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` is set empty.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "tests" / "privacy" / "pii_eval.jsonl"
RUNS = 2000
PII_KINDS = ("EMAIL", "PHONE", "CARD", "IBAN", "DNI", "NIE", "SSN", "IP")

PLANTED = (("EMAIL", "maria.lopez@example.es"), ("PHONE", "612 345 678"),
           ("PHONE", "(415) 555-2671"), ("CARD", "4111 1111 1111 1111"),
           ("IBAN", "ES91 2100 0418 4502 0005 1332"), ("DNI", "52409069G"),
           ("SECRET", "AKIAIOSFODNN7EXAMPLE"))
_BODY = (
    "Hola equipo, os resumo la incidencia de ayer para que quede en el hilo. La clienta, "
    "María López, escribió desde maria.lopez@example.es porque el cargo del pedido 2026-0042 "
    "salió dos veces el 30/11/2026 a las 10:30. Dice que se puede hablar con ella en el "
    "612 345 678 por las mañanas, o con su socio en Nueva York al (415) 555-2671. Pagó con la "
    "tarjeta 4111 1111 1111 1111 y pide el reembolso a la cuenta ES91 2100 0418 4502 0005 1332; "
    "adjunta su DNI 52409069G para la factura. Hi all, English summary: the refund of 1.234,56 "
    "EUR is approved, version 2.4.1 of the billing job fixed the double charge, and someone "
    "pasted the key AKIAIOSFODNN7EXAMPLE into the ticket, so please rotate it today. Tracking "
    "number 1Z999AA10123456784 is for the replacement parcel. "
)
_FILLER = ("Gracias a todos por la paciencia; we will review the whole flow on Monday at "
           "9:00 with the support team and close the ticket once the customer confirms. ")
MESSAGE = (_BODY + _FILLER * 4)[:1000]

# Presidio's entity names, mapped to Charla's kinds.
PRESIDIO_KINDS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
                  "IBAN_CODE": "IBAN", "ES_NIF": "DNI", "ES_NIE": "NIE", "US_SSN": "SSN",
                  "IP_ADDRESS": "IP", "AWS_KEY": "SECRET"}

Finder = Callable[[str], list[tuple[str, int, int]]]


def _guard_network() -> list[str]:
    """Records (and refuses) every attempt to resolve a name or open a connection."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2])[:120])
        raise OSError("network disabled by the redaction benchmark")

    socket.getaddrinfo = refuse
    socket.create_connection = refuse
    socket.socket.connect = refuse  # type: ignore[method-assign]
    return attempts


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _measure(find: Finder) -> dict[str, Any]:
    """Timings per message, the seven planted things found, and the eval-set counts."""
    for _ in range(50):
        find(MESSAGE)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        find(MESSAGE)
        times.append((time.perf_counter() - started) * 1000)
    found = {(kind, MESSAGE[s:e]) for kind, s, e in find(MESSAGE)}
    counts = {kind: Counter[str]() for kind in PII_KINDS}
    for line in EVAL.read_text(encoding="utf-8").splitlines():
        snippet = json.loads(line)
        text = snippet["text"]
        want = Counter((e["kind"], e["text"]) for e in snippet["entities"]
                       if e["kind"] in PII_KINDS)
        got = Counter((k, text[s:e]) for k, s, e in find(text) if k in PII_KINDS)
        for key in want | got:
            hit = min(want[key], got[key])
            counts[key[0]]["tp"] += hit
            counts[key[0]]["fp"] += got[key] - hit
            counts[key[0]]["fn"] += want[key] - hit
    return {"p50_ms": statistics.median(times), "p95_ms": _percentile(times, 0.95),
            "found": sum(p in found for p in PLANTED), "planted": len(PLANTED),
            "extra": sorted(f"{k} {v!r}" for k, v in found - set(PLANTED)),
            "eval": {k: dict(c) for k, c in counts.items()}}


def _ours() -> dict[str, Any]:
    attempts = _guard_network()
    started = time.perf_counter()
    import shared.redact
    imported = time.perf_counter() - started
    redactor = shared.redact.Redactor(regions=("ES", "US"))
    redactor.find(MESSAGE)
    first_use = time.perf_counter() - started - imported
    result = _measure(lambda text: [(f.kind, f.start, f.end) for f in redactor.find(text)])
    return result | {"import_s": imported, "first_use_s": first_use, "network": attempts}


def _presidio() -> dict[str, Any]:
    """Presidio as it works offline: no NLP model, an explicit registry, no suffix-list fetch."""
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    attempts = _guard_network()
    started = time.perf_counter()
    from importlib.metadata import version

    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        EsNieRecognizer,
        EsNifRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )
    imported = time.perf_counter() - started
    lang = "en"
    aws = PatternRecognizer(supported_entity="AWS_KEY", supported_language=lang, patterns=[
        Pattern("aws key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", 0.9)])
    registry = RecognizerRegistry(supported_languages=[lang], recognizers=[
        EmailRecognizer(supported_language=lang),
        PhoneRecognizer(supported_language=lang, supported_regions=("ES", "US")),
        CreditCardRecognizer(supported_language=lang), IbanRecognizer(supported_language=lang),
        EsNifRecognizer(supported_language=lang), EsNieRecognizer(supported_language=lang),
        UsSsnRecognizer(supported_language=lang), IpRecognizer(supported_language=lang), aws])
    nlp = NoOpNlpEngine(models=[{"lang_code": lang, "model_name": "none"}])
    nlp.load()
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=[lang])

    def find(text: str) -> list[tuple[str, int, int]]:
        return [(PRESIDIO_KINDS[r.entity_type], r.start, r.end)
                for r in engine.analyze(text, language=lang)]

    find(MESSAGE)
    first_use = time.perf_counter() - started - imported
    result = _measure(find)
    return result | {"import_s": imported, "first_use_s": first_use, "network": attempts,
                     "version": version("presidio-analyzer")}


def _in_fresh_interpreter(python: str, flag: str) -> dict[str, Any]:
    done = subprocess.run([python, str(Path(__file__).resolve()), flag], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def run(out: dict[str, Any]) -> None:
    """Both sides, each in a fresh interpreter so that import times are honest."""
    print("== redaction: a 1,000-character message", flush=True)
    data = {"ours": _in_fresh_interpreter(sys.executable, "--ours")}
    python = os.environ.get("CHARLA_BENCH_PRESIDIO_PYTHON")
    if python:
        data["presidio"] = _in_fresh_interpreter(python, "--presidio")
    else:
        print("   CHARLA_BENCH_PRESIDIO_PYTHON not set: Presidio skipped", flush=True)
    out["redaction"] = data


def _rates(counts: dict[str, dict[str, int]]) -> tuple[float, float]:
    tp = sum(c.get("tp", 0) for c in counts.values())
    fp = sum(c.get("fp", 0) for c in counts.values())
    fn = sum(c.get("fn", 0) for c in counts.values())
    return tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0


def report_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"Redaction of a {len(MESSAGE):,}-character message (Spanish and English; an e-mail, "
             f"two phones, a card, an IBAN, a DNI, an AWS key), {RUNS:,} runs after warm-up:", "",
             "| redactor | p50 | p95 | found | also flagged | import | build + first call | "
             "eval precision / recall (personal data) | network attempts |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"ours": "Charla (regex + phonenumbers + python-stdnum)",
             "presidio": "Presidio {version}, no-op NLP engine, explicit registry"}
    for side, r in data.items():
        precision, recall = _rates(r["eval"])
        lines.append(
            f"| {names[side].format(version=r.get('version', ''))} | {r['p50_ms']:.2f} ms | "
            f"{r['p95_ms']:.2f} ms | {r['found']} of {r['planted']} | "
            f"{', '.join(r['extra']) or 'nothing'} | {r['import_s']:.2f} s | "
            f"{r['first_use_s']:.2f} s | {precision:.3f} / {recall:.3f} | "
            f"{len(r['network'])} |")
    return lines


def main() -> None:
    if sys.argv[1:] in (["--ours"], ["--presidio"]):
        result = _ours() if sys.argv[1] == "--ours" else _presidio()
        print(json.dumps(result))
        return
    out: dict[str, Any] = {}
    run(out)
    print("\n".join(report_lines(out["redaction"])))


if __name__ == "__main__":
    main()
