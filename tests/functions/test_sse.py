"""The API's stream recorder: what it forwards and the answer it keeps for the audit log."""

from __future__ import annotations

import json

import pytest

from functions.sse import StreamRecorder


def event(**data: object) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def piece(text: str, finish: str | None = None) -> bytes:
    return event(choices=[{"index": 0, "delta": {"content": text}, "finish_reason": finish}])


USAGE = event(choices=[], usage={"prompt_tokens": 7, "completion_tokens": 3})


def test_the_answer_grows_with_each_piece_read_or_not_in_between() -> None:
    recorder = StreamRecorder(forward_usage=False)
    assert recorder.feed(piece("Hola")) == piece("Hola")
    assert recorder.answer == "Hola"
    recorder.feed(piece(","))
    recorder.feed(piece(" mundo"))  # two pieces between reads
    assert recorder.answer == "Hola, mundo"
    assert recorder.answer == "Hola, mundo"  # reading twice adds nothing
    recorder.feed(piece("!", finish="stop"))
    assert (recorder.answer, recorder.finish_reason) == ("Hola, mundo!", "stop")


def test_an_event_split_across_reads_is_forwarded_once_whole() -> None:
    recorder = StreamRecorder(forward_usage=True)
    raw = piece("uno") + USAGE + b"data: [DONE]\n\n"
    forwarded = b"".join(recorder.feed(raw[i:i + 5]) for i in range(0, len(raw), 5))
    assert forwarded + recorder.flush() == raw
    assert (recorder.answer, recorder.prompt_tokens, recorder.completion_tokens) == ("uno", 7, 3)


def test_the_usage_chunk_goes_only_to_clients_that_asked_for_it() -> None:
    recorder = StreamRecorder(forward_usage=False)
    assert recorder.feed(USAGE) == b""
    assert recorder.completion_tokens == 3  # kept for the log all the same


@pytest.mark.parametrize(("upstream", "code"), [
    ({"message": "the engine went away mid-answer", "type": "server_error",
      "code": "engine_unavailable"}, "model_server_unavailable"),
    ({"message": "the engine stopped answering", "type": "server_error",
      "code": "engine_timeout"}, "model_server_timeout"),
    ({"message": "an older gateway's event", "type": "engine_error"},
     "model_server_unavailable"),
    ("a bare string", "model_server_unavailable"),
])
def test_the_model_servers_error_event_is_passed_on_in_the_apis_one_shape(
    upstream: object, code: str
) -> None:
    recorder = StreamRecorder(forward_usage=False)
    out = recorder.feed(piece("a") + event(error=upstream) + event(error={"message": "more"}))
    first, rest = out.split(b"\n\n", 1)
    assert first + b"\n\n" == piece("a")
    message = upstream["message"] if isinstance(upstream, dict) else upstream
    # One error, then nothing: a second error event is not passed on.
    assert json.loads(rest.strip().removeprefix(b"data: ")) == {"error": {
        "message": message, "type": "server_error", "param": None, "code": code}}
    assert (recorder.error, recorder.error_code) == (message, code)
