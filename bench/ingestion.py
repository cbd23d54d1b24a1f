"""Knowledge-base ingestion end to end, and each of its stages alone on the same input.

The evaluation set's 16 documents, :data:`COPIES` copies under other names, ingested as the
API does (parse, chunk, embed through the gateway, store); then parsing and chunking alone, and
embedding alone, so the report shows which stage bounds the throughput.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import procs

COPIES = 8
DOCS = Path(__file__).resolve().parents[1] / "tests" / "knowledge" / "eval" / "docs"


def run(out: dict[str, Any], logdir: Path, keys: procs.Keys) -> None:
    """Fill ``out["ingestion"]``."""
    print("== knowledge-base ingestion: throughput and its stages", flush=True)
    from functions.knowledge import Knowledge
    from functions.model_client import ModelClient
    from shared.db import Database, make_pool
    from shared.knowledge.chunk import chunk_document
    from shared.knowledge.parse import parse_document
    from shared.knowledge.store import passage_text
    from shared.settings import Settings

    files = [(f"copy{n}/{p.name}", p.read_bytes()) for n in range(COPIES)
             for p in sorted(DOCS.iterdir()) if p.is_file()]
    pg, url = procs.database(logdir, "pg-ingest")
    try:
        with procs.gateway(keys, logdir) as (gw, _engine):
            settings = Settings.from_env({"DATABASE_URL": url, "MODEL_SERVER_URL": gw,
                                          "CHARLA_SERVICE_PRIVATE_KEY": keys.private})

            async def measure() -> dict[str, Any]:
                db = Database(make_pool(settings))
                model = ModelClient(settings)
                try:
                    kb = Knowledge(db, model)
                    ingestor = kb.ingestor("bench:ingest")
                    collection = await ingestor.collection("bench")
                    started = time.perf_counter()
                    outcomes = await ingestor.ingest(collection, files)
                    whole = time.perf_counter() - started
                    started = time.perf_counter()
                    chunks = [c for name, data in files
                              for c in chunk_document(parse_document(name, data))]
                    parse_s = time.perf_counter() - started
                    texts = [passage_text(c.heading, c.text) for c in chunks]
                    started = time.perf_counter()
                    for i in range(0, len(texts), 32):
                        await model.embed(texts[i:i + 32], sub="bench:ingest", query=False)
                    embed_s = time.perf_counter() - started
                    return {"documents": len(files), "bytes": sum(len(d) for _, d in files),
                            "chunks": sum(o.chunks for o in outcomes), "seconds": whole,
                            "parse_chunk_s": parse_s, "embed_s": embed_s,
                            "store_and_rest_s": whole - parse_s - embed_s}
                finally:
                    await model.close()
                    await db.close()

            out["ingestion"] = asyncio.run(measure())
    finally:
        pg.stop()


def report_lines(data: dict[str, Any]) -> list[str]:
    return [f"Ingestion, end to end: {data['documents']} documents, "
            f"{data['bytes'] / 1e6:.1f} MB, {data['chunks']} chunks in {data['seconds']:.1f} s: "
            f"**{data['chunks'] / data['seconds']:.0f} chunks/s**. Each stage alone on the same "
            f"input: parse + chunk {data['parse_chunk_s']:.1f} s, embed (model server, "
            f"batches of 32) {data['embed_s']:.1f} s, the rest (storing, hashing) about "
            f"{max(0.0, data['store_and_rest_s']):.1f} s."]
