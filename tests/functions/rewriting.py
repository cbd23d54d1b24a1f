"""A model server whose answers a test chooses: a proxy on loopback between the functions and the
real model server that puts a chosen answer (or tool call) in place of the model's, so that a
check, not the model's mood, decides each case (what a small model may write: the right
citation over a wrong figure). The ``stack`` fixture (tests/functions/conftest.py) runs the
functions app and worker behind it, with one document granted to an API client and a Slack
channel.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions.api.auth import client_signer
from functions.judge import INSTRUCTION
from tests.functions.bots import Bots

VACATIONS = b"""# Vacations

## Lisbon

Vacation requests go through the HR portal. Every employee of the Lisbon office has 27 days of
paid vacation per year. Unused days expire at the end of March.
"""
SENTENCE = ("Every employee of the Lisbon office has 27 days of paid vacation per year.")
QUESTION = "How many vacation days do Lisbon employees get?"
WRONG = "[1] In 2022, Lisbon employees have 24 days of paid vacation per year."
RIGHT = "Every employee of the Lisbon office has 27 days of paid vacation per year [1]."


class Rewriter:
    """Forwards to the model server; chat answers come back carrying ``answer`` instead of
    the model's text (whole, or streamed a word per event, the model's own pieces emptied),
    or, whole, ``call`` (a tool's name and arguments) instead of the model's answer. The
    answer judge's questions (functions/judge.py) are counted apart, and answered at once
    with ``verdict`` (None: the model's own word), failed with ``judge_status``, or, with
    ``judge_held``, not answered until :attr:`release` is set."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.answer: str | None = None
        self.call: tuple[str, str] | None = None
        self.chats = 0  # chat completions asked of the model server
        self.sent: dict[str, Any] = {}  # the last chat completion's body
        self.verdict: str | None = None
        self.judge_status: int | None = None
        self.judged: list[dict[str, Any]] = []  # the bodies of the judge's questions
        self.judge_held = False
        self.release = threading.Event()

    def _rewritten(self, raw: bytes) -> bytes:
        if not raw.startswith(b"data:"):
            body = json.loads(raw)
            choice = body["choices"][0]
            if self.call is not None:
                name, arguments = self.call
                choice["message"] = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_rewritten", "type": "function",
                     "function": {"name": name, "arguments": arguments}}]}
                choice["finish_reason"] = "tool_calls"
            else:
                choice["message"] = {"role": "assistant", "content": self.answer}
                choice["finish_reason"] = "stop"  # the answer put in its place is whole
            return json.dumps(body).encode()
        events, placed = [], False
        for event in raw.split(b"\n\n"):
            payload = event.removeprefix(b"data: ")
            chunk = json.loads(payload) if payload.startswith(b"{") else None
            delta = ((chunk.get("choices") or [{}])[0].get("delta") or {}) if chunk else {}
            if self.call is not None:  # the model's call, carrying ``call``'s arguments
                for call in delta.get("tool_calls") or ():
                    if "arguments" in call.get("function", {}):
                        call["function"]["arguments"] = "" if placed else self.call[1]
                        placed = True
                events.append(b"data: " + json.dumps(chunk).encode() if chunk else event)
                continue
            assert self.answer is not None
            choice = (chunk.get("choices") or [None])[0] if chunk else None
            if choice is not None:  # words in place of the model's call, if it wrote one
                if choice.get("finish_reason") == "tool_calls":
                    choice["finish_reason"] = "stop"
                if (choice.get("delta") or {}).pop("tool_calls", None) is not None:
                    delta = choice["delta"]
                    delta.setdefault("content", "")
            if chunk is None or "content" not in delta:
                events.append(b"data: " + json.dumps(chunk).encode() if chunk else event)
                continue
            if not placed:  # the answer, a word per event, as a model writes it
                for word in re.findall(r"\S+\s*", self.answer):
                    delta["content"] = word
                    events.append(b"data: " + json.dumps(chunk).encode())
                placed = True
            delta["content"] = ""
            events.append(b"data: " + json.dumps(chunk).encode())
        return b"\n\n".join(events)

    def app(self) -> Starlette:
        async def forward(request: Request) -> Response:
            raw = await request.body()
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("authorization", "content-type")}
            chat = request.url.path.endswith("/chat/completions")
            body = json.loads(raw) if chat else {}
            judging = chat and body["messages"][0]["content"] == INSTRUCTION
            if judging:
                self.judged.append(body)
                if self.judge_held:
                    await asyncio.to_thread(self.release.wait, 120)
                if self.judge_status is not None:
                    return Response(b'{"error": {"message": "engine unavailable"}}',
                                    self.judge_status, media_type="application/json")
                if self.verdict is not None:  # the model's word, without asking it
                    return Response(json.dumps({"object": "chat.completion", "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": self.verdict}}]}).encode(),
                        media_type="application/json")
            elif chat:
                self.chats += 1
                self.sent = body
            async with httpx.AsyncClient(timeout=120) as client:
                upstream = await client.request(request.method, self.target + request.url.path,
                                                content=raw, headers=headers)
            content = upstream.content
            if (not judging and (self.answer, self.call) != (None, None) and chat
                    and upstream.status_code == 200):
                content = self._rewritten(content)
            return Response(content, upstream.status_code,
                            media_type=upstream.headers.get("content-type"))

        return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


class Stack:
    def __init__(self, bots: Bots, rewriter: Rewriter, channel: str, client: str,
                 collection: str) -> None:
        self.bots, self.rewriter, self.channel, self.client = bots, rewriter, channel, client
        self.collection = collection
        self.headers = {"Authorization": "Bearer " + client_signer(bots.settings).sign(
            client, ttl_s=600)}
