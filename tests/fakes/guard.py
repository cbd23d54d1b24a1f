"""A guard model server on loopback, in Llama Guard's answer shape.

It stands for the team's own guard model on the GPU host, which this machine cannot run. It
judges the last message of what it is asked (the message to check on input, the answer on
output): "unsafe" with hazard S1 when that message holds ``flag`` (in any case), else "safe".
It records every request, and can be told to fail (HTTP 500) whenever it is asked about an
answer.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class FakeGuard:
    def __init__(self, flag: str = "attack") -> None:
        self.flag = flag
        self.fail_on_answers = False
        self.asked: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.asked.append(body)
        last = body["messages"][-1]
        if self.fail_on_answers and last["role"] == "assistant":
            return JSONResponse({"error": {"message": "guard overloaded"}}, status_code=500)
        content = str(last.get("content", "")).lower()
        verdict = "unsafe\nS1" if self.flag.lower() in content else "safe"
        return JSONResponse({"id": "g", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant",
                                                      "content": verdict}}]})
