"""A pass-through to a model server that writes down every whole chat answer it relays.

``python -m bench.recording_proxy PORT TARGET LOG``: requests to 127.0.0.1:PORT go to TARGET
unchanged; the text of each non-streamed ``/v1/chat/completions`` answer is appended to LOG,
one JSON line each. bench/answers.py puts it between the API and the model server to keep what
the model wrote beside what the API showed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app(target: str, log: Path) -> Starlette:
    client = httpx.AsyncClient(base_url=target, timeout=600)

    async def forward(request: Request) -> Response:
        raw = await request.body()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        upstream = await client.request(request.method, request.url.path, content=raw,
                                        headers=headers, params=request.query_params)
        if (request.url.path.endswith("/chat/completions") and upstream.status_code == 200
                and not upstream.content.startswith(b"data:")):
            answer = upstream.json()["choices"][0]["message"]["content"]
            with log.open("a") as out:
                out.write(json.dumps({"answer": answer}) + "\n")
        return Response(upstream.content, upstream.status_code,
                        media_type=upstream.headers.get("content-type"))

    async def health(request: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[Route("/proxy-health", health),
                             Route("/{path:path}", forward, methods=["GET", "POST"])])


def main() -> None:
    port, target, log = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    uvicorn.run(app(target, log), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
