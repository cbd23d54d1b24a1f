"""A stand-in for ``llama-server`` that computes nothing: it answers like it, token by token.

The gateway starts it in place of the real binary (``CHARLA_LLAMA_SERVER_BIN`` names a
wrapper script), so ``bench.run gateway_cpu`` can count the gateway's own CPU per token
without an engine competing for the cores. It speaks what the gateway uses: ``GET /health``
and ``POST /v1/chat/completions`` whole or streamed (chunked server-sent events, one event per
token, a usage chunk when asked, ``[DONE]``), with keep-alive. Each answer has ``max_tokens``
tokens, one every ``--interval-ms`` (6.5 ms: about the bundled model's single-chat speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

WORDS = ("Hola", " que", " tal", ",", " the", " quick", " brown", " fox", " jumps", ".",
         " over", " a", " lazy", " dog", " and", " then", " some", " more", " words", " here",
         " in", " no", " fixed", " order", " so", " that", " the", " answer", " never", " loops",
         " like", " a", " model", " that", " writes", " on", " about", " its", " own", " ideas",
         " with", " care", " for", " each", " new", " line", " of", " text", " we", " send")
STEP = 7  # the word after word i is word i + 7 (mod 50): a sequence of 50 that reads as varied


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _head(status: str, content_type: str, chunked: bool, length: int = 0) -> bytes:
    size = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{size}\r\n"
            "Keep-Alive: timeout=5, max=100000\r\n\r\n").encode()


class StandIn:
    def __init__(self, model: str, interval_s: float) -> None:
        self.model = model
        self.interval = interval_s

    def _event(self, i: int, n: int, created: int) -> bytes:
        last = i == n - 1
        data = {"choices": [{"finish_reason": "length" if last else None, "index": 0,
                             "delta": {"content": WORDS[i * STEP % len(WORDS)]}}],
                "created": created, "id": "chatcmpl-standin", "model": self.model,
                "system_fingerprint": "standin", "object": "chat.completion.chunk"}
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    async def _answer(self, body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        n = int(body.get("max_tokens") or 16)  # type: ignore[call-overload]
        created = int(time.time())
        usage = {"completion_tokens": n, "prompt_tokens": 12, "total_tokens": n + 12}
        if not body.get("stream"):
            await asyncio.sleep(self.interval * n)
            text = "".join(WORDS[i * STEP % len(WORDS)] for i in range(n))
            raw = json.dumps({
                "choices": [{"finish_reason": "length", "index": 0,
                             "message": {"role": "assistant", "content": text}}],
                "created": created, "model": self.model, "object": "chat.completion",
                "id": "chatcmpl-standin", "usage": usage}, separators=(",", ":")).encode()
            writer.write(_head("200 OK", "application/json", False, len(raw)) + raw)
            return
        writer.write(_head("200 OK", "text/event-stream", True))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(n):
            # Paced from the start, so a late wake-up does not slow the whole answer.
            await asyncio.sleep(max(0.0, start + (i + 1) * self.interval - loop.time()))
            writer.write(_chunk(self._event(i, n, created)))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            tail = {"choices": [], "created": created, "id": "chatcmpl-standin",
                    "model": self.model, "object": "chat.completion.chunk", "usage": usage}
            writer.write(_chunk(b"data: " + json.dumps(tail, separators=(",", ":")).encode()
                                + b"\n\n"))
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                length = 0
                for field in fields:
                    name, _, value = field.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if line.startswith("GET /health"):
                    ok = b'{"status":"ok"}'
                    writer.write(_head("200 OK", "application/json", False, len(ok)) + ok)
                elif line.startswith("POST /v1/chat/completions"):
                    await self._answer(json.loads(body), writer)
                else:
                    writer.write(_head("404 Not Found", "text/plain", False, 0))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", default="standin")
    parser.add_argument("--interval-ms", type=float, default=6.5)
    args, _ = parser.parse_known_args()  # llama-server's other flags are ignored
    standin = StandIn(args.alias, args.interval_ms / 1000)

    async def run() -> None:
        server = await asyncio.start_server(standin.serve, args.host, args.port)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
