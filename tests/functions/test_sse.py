"""The API's stream recorder: what it forwards and the answer it keeps for the audit log."""

from __future__ import annotations

import json

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


def test_an_error_event_is_forwarded_and_remembered() -> None:
    recorder = StreamRecorder(forward_usage=False)
    err = event(error={"message": "the engine stopped"})
    assert recorder.feed(piece("a") + err) == piece("a") + err
    assert recorder.error == "the engine stopped"
