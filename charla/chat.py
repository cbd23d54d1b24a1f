"""``charla chat``: a terminal chat against the API, streamed, with the session's history."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TextIO

import httpx

HELP = "Type a message and press Enter. /reset forgets the conversation, /exit leaves."


def stream_reply(client: httpx.Client, messages: list[dict[str, str]], model: str | None,
                 max_tokens: int | None = None) -> Iterator[str]:
    """Yield the answer's text as the API streams it; raise RuntimeError with the API's reason."""
    body: dict[str, object] = {"messages": messages, "stream": True}
    if model:
        body["model"] = model
    if max_tokens:
        body["max_tokens"] = max_tokens
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            try:
                reason = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                reason = response.text[:200]
            wait = response.headers.get("retry-after")
            suffix = f" (retry in {wait} s)" if wait else ""
            raise RuntimeError(f"{response.status_code}: {reason}{suffix}")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line.removeprefix("data:").strip()
            if payload == "[DONE]":
                return
            data = json.loads(payload)
            if "error" in data:
                raise RuntimeError(str(data["error"].get("message", data["error"])))
            for choice in data.get("choices", []):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


def run_chat(api_url: str, token: str, *, model: str | None = None,
             max_tokens: int | None = None, read: Callable[[str], str] = input,
             out: TextIO | None = None) -> int:
    import sys

    out = out or sys.stdout
    history: list[dict[str, str]] = []
    print(HELP, file=out, flush=True)
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=httpx.Timeout(120.0, connect=5.0)) as client:
        while True:
            try:
                line = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                print(file=out)
                return 0
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return 0
            if line == "/reset":
                history.clear()
                print("(conversation forgotten)", file=out, flush=True)
                continue
            history.append({"role": "user", "content": line})
            print("bot> ", end="", file=out, flush=True)
            parts: list[str] = []
            try:
                for text in stream_reply(client, history, model, max_tokens):
                    parts.append(text)
                    print(text, end="", file=out, flush=True)
            except (RuntimeError, httpx.HTTPError) as exc:
                history.pop()
                print(f"\n[error] {exc}", file=out, flush=True)
                continue
            print(file=out, flush=True)
            history.append({"role": "assistant", "content": "".join(parts)})
