"""Slack end to end: signed events → /slack/events → queue → worker → model → Slack's API."""

from __future__ import annotations

import asyncio
import copy
import html
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, Call
from tests.functions.bots import Bots, eventually

EVENTS = Path(__file__).resolve().parents[1] / "events" / "slack"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return data


def mention(text: str = "What is two plus two?", *, thread_ts: str | None = None,
            channel: str | None = None) -> dict[str, Any]:
    """A fresh app_mention with its own event_id, channel and ts."""
    body = copy.deepcopy(sample("app_mention_channel"))
    ts = f"{time.time():.6f}"
    body["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    ev = body["event"]
    ev.update(text=f"<@{BOT_USER_ID}> {text}", ts=ts, event_ts=ts,
              channel=channel or f"C{uuid.uuid4().hex[:9].upper()}")
    if thread_ts:
        ev["thread_ts"] = thread_ts
    else:
        ev.pop("thread_ts", None)
    return body


def follow_up(channel: str, thread: str, text: str) -> dict[str, Any]:
    """A fresh reply in a channel thread, without a mention."""
    body = copy.deepcopy(sample("message_thread_reply"))
    body["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    body["event"].update(channel=channel, thread_ts=thread, ts=f"{time.time():.6f}", text=text)
    return body


def posts_in(bots: Bots, channel: str, thread: str) -> list[dict[str, Any]]:
    """The calls that made a new message in the thread, posts and stream starts, each with
    the text it showed first (``text`` for a post, ``markdown_text`` for a stream)."""
    return [{**c.json, "method": c.method,
             "text": c.json.get("text", c.json.get("markdown_text", ""))}
            for c in bots.slack.calls
            if c.method in ("chat.postMessage", "chat.startStream")
            and c.json.get("channel") == channel and c.json.get("thread_ts") == thread]


def stream_calls(bots: Bots, channel: str, ts: str) -> list[Call]:
    """The appends and the stop of the streamed message ``ts``, in order."""
    return [c for c in bots.slack.calls
            if c.method in ("chat.appendStream", "chat.stopStream")
            and c.json.get("channel") == channel and c.json.get("ts") == ts]


def streamed_ts(bots: Bots, channel: str, thread: str) -> str:
    """The ts of the one message streamed in the thread."""
    [ts] = [ts for (ch, ts), m in bots.slack.messages.items()
            if ch == channel and m.get("thread_ts") == thread and "streaming" in m]
    return ts


def shown(bots: Bots, channel: str, thread: str) -> list[str]:
    """The text of each message Slack now shows in the thread, oldest first."""
    return [m["text"] for (ch, _), m in sorted(bots.slack.messages.items())
            if ch == channel and m.get("thread_ts") == thread]


async def answered(bots: Bots, body: dict[str, Any]) -> list[str]:
    ev = body["event"]
    channel, thread = ev["channel"], ev.get("thread_ts") or ev["ts"]
    state = await eventually(lambda: bots.job_state("slack", body["event_id"]))
    await eventually(lambda: bots.job_state("slack", body["event_id"])[0][0] == "done",
                     timeout=60)
    assert state
    return shown(bots, channel, thread)


async def test_a_mention_is_answered_in_its_thread_and_the_thread_goes_on(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    first = mention("Name a colour of the sky.")
    response = await bots.slack_event(http, first)
    assert response.status_code == 200
    # Acknowledged before it is answered (Slack wants the 2xx within 3 s, and the model takes
    # longer): nothing is in the thread yet.
    assert posts_in(bots, first["event"]["channel"], first["event"]["ts"]) == []
    [answer] = await answered(bots, first)
    assert answer.strip() and not answer.endswith("…")
    channel, thread = first["event"]["channel"], first["event"]["ts"]
    # One message: posted whole, or (a longer answer) streamed to the asker as it was
    # written, and stopped with the last words (the model decides the length; tests/functions/
    # worker/test_reply.py pins the timing down).
    [post] = posts_in(bots, channel, thread)
    edits = [c.json["text"] for c in bots.slack.calls_to("chat.update")
             if c.json["channel"] == channel]
    assert not edits
    if post["method"] == "chat.startStream":
        assert (post["recipient_user_id"], post["recipient_team_id"]) == (
            first["event"]["user"], TEAM_ID)
        rest = stream_calls(bots, channel, streamed_ts(bots, channel, thread))
        assert [c.method for c in rest][-1] == "chat.stopStream"
        assert post["text"] + "".join(c.json.get("markdown_text", "") for c in rest) == answer
    else:
        assert post["text"] == answer
    assert bots.turns("slack", f"{TEAM_ID}:{channel}:{thread}")[0] == (
        "user", "Name a colour of the sky.")

    # A follow-up in that thread, without a mention, continues the same conversation.
    follow = follow_up(channel, thread, "And at night?")
    assert (await bots.slack_event(http, follow)).status_code == 200
    await eventually(lambda: len(bots.turns("slack", f"{TEAM_ID}:{channel}:{thread}")) == 4,
                     timeout=60)
    assert len(shown(bots, channel, thread)) == 2


async def test_a_follow_up_sent_before_the_first_answer_is_stored_is_answered(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    first = mention("Name a fruit.")
    assert (await bots.slack_event(http, first)).status_code == 200
    channel, thread = first["event"]["channel"], first["event"]["ts"]
    # At once: the first answer is still being written, and nothing of the thread is stored.
    assert bots.turns("slack", f"{TEAM_ID}:{channel}:{thread}") == []
    follow = follow_up(channel, thread, "And a vegetable?")
    assert (await bots.slack_event(http, follow)).status_code == 200
    assert bots.job_state("slack", follow["event_id"]), "the follow-up was dropped"
    await answered(bots, first)
    await answered(bots, follow)
    assert len(shown(bots, channel, thread)) == 2


async def test_a_thread_goes_on_where_no_conversation_is_kept(
    stateless_bots: Bots, http: httpx.AsyncClient
) -> None:
    bots = stateless_bots
    first = mention("Name a colour of the sky.")
    await bots.slack_event(http, first)
    await answered(bots, first)
    channel, thread = first["event"]["channel"], first["event"]["ts"]
    follow = follow_up(channel, thread, "And at night?")
    assert (await bots.slack_event(http, follow)).status_code == 200
    assert bots.job_state("slack", follow["event_id"]), "the follow-up was dropped"
    await answered(bots, follow)
    assert len(shown(bots, channel, thread)) == 2
    assert bots.rows("SELECT count(*) FROM turns") == [(0,)]  # and still no history
    # The mark names no thread: a keyed digest only (functions/slack/threads.py).
    [(mark,)] = bots.rows("SELECT digest FROM slack_threads")
    assert thread.encode() not in bytes(mark) and channel.encode() not in bytes(mark)


async def test_a_direct_message_with_a_file_is_answered_by_its_text(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    body = copy.deepcopy(sample("message_im_file_share"))
    ts = f"{time.time():.6f}"
    body["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    body["event"].update(channel=f"D{uuid.uuid4().hex[:9].upper()}", ts=ts, event_ts=ts,
                         text="What is two plus two?")
    assert (await bots.slack_event(http, body)).status_code == 200
    [answer] = await answered(bots, body)
    assert answer.strip()
    ev = body["event"]
    assert bots.turns("slack", f"{TEAM_ID}:{ev['channel']}:{ts}")[0] == (
        "user", "What is two plus two?")


async def test_a_long_answer_is_streamed_to_the_asker(bots: Bots,
                                                     http: httpx.AsyncClient) -> None:
    # A poem may loop, and its answer then ends at the loop's first turn: at times within the
    # first edit interval, so that all of it goes with the stream's start and nothing is left
    # to stream. Then it is asked again (a new mention, a new thread), up to three times.
    for _ in range(3):
        body = mention("Write a short poem about the sea.")
        await bots.slack_event(http, body)
        [answer] = await answered(bots, body)
        ev = body["event"]
        channel, thread = ev["channel"], ev["ts"]
        [start] = posts_in(bots, channel, thread)
        assert start["method"] == "chat.startStream"
        assert (start["thread_ts"], start["recipient_user_id"], start["recipient_team_id"]) == (
            thread, ev["user"], TEAM_ID)
        rest = stream_calls(bots, channel, streamed_ts(bots, channel, thread))
        *appends, stop = rest
        joined = start["text"] + "".join(c.json.get("markdown_text", "") for c in rest)
        assert start["text"] and joined.startswith(start["text"])
        if start["text"] != joined:
            break
    # Shown before it was whole: the stream started with its beginning. (How many appends
    # follow depends on the engine's speed: 48 tokens can come within two edit intervals.)
    # What the stream showed of a loop's second turn stays (Slack cannot take back what a
    # stream appended), so the answer is a prefix of what was shown.
    assert start["text"] != joined
    assert joined == answer or joined.startswith(answer)
    assert {c.method for c in appends} <= {"chat.appendStream"}
    assert stop.method == "chat.stopStream"
    # Appended at most once an edit interval (0.2 s here; the end goes at once), and
    # nothing was edited.
    calls = [start_call(bots, channel), *appends]
    assert all(b.at - a.at >= 0.15 for a, b in itertools.pairwise(calls))
    assert not [c for c in bots.slack.calls_to("chat.update") if c.json["channel"] == channel]
    assert bots.turns("slack", f"{TEAM_ID}:{channel}:{thread}")[-1] == (
        "assistant", html.unescape(answer))


def start_call(bots: Bots, channel: str) -> Call:
    [call] = [c for c in bots.slack.calls_to("chat.startStream") if c.json["channel"] == channel]
    return call


async def test_a_thread_reply_where_charla_never_spoke_is_left_alone(
    bots: Bots, http: httpx.AsyncClient
) -> None:
    follow = copy.deepcopy(sample("message_thread_reply"))
    follow["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    follow["event"]["channel"] = f"C{uuid.uuid4().hex[:9].upper()}"
    assert (await bots.slack_event(http, follow)).status_code == 200
    # A delivery is queued before it is acknowledged: none was, and none can come later.
    assert bots.job_state("slack", follow["event_id"]) == []


async def test_a_redelivered_event_gets_one_answer(bots: Bots, http: httpx.AsyncClient) -> None:
    body = mention("Say hi.")
    first, *retries = await asyncio.gather(
        bots.slack_event(http, body),
        *(bots.slack_event(http, body, retry=n) for n in (1, 2, 3)))
    assert all(r.status_code == 200 for r in (first, *retries))
    await answered(bots, body)
    # Every copy was queued (or not) before it was acknowledged: one job, done, posted once.
    assert len(bots.job_state("slack", body["event_id"])) == 1
    assert len(posts_in(bots, body["event"]["channel"], body["event"]["ts"])) == 1


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "missing", "stale", "future",
                                  "malformed timestamp", "empty timestamp"])
async def test_bad_signatures_are_401(bots: Bots, http: httpx.AsyncClient, case: str) -> None:
    body = mention()
    raw = json.dumps(body).encode()
    now = int(time.time())
    from functions.slack.verify import SignatureVerifier

    signer = SignatureVerifier("not-the-secret" if case == "wrong secret" else
                               "8f742231b10e8888abcd99yyyzzz85a5")
    headers = {"Content-Type": "application/json"}
    # 301 s in the past, 310 in the future: the server reads its clock a moment later.
    ts = {"stale": now - 301, "future": now + 310}.get(case, now)
    if case != "missing":
        headers["X-Slack-Request-Timestamp"] = {"malformed timestamp": "12a45",
                                                "empty timestamp": ""}.get(case, str(ts))
        headers["X-Slack-Signature"] = signer.sign(raw, str(ts))
    if case == "tampered":
        raw = raw.replace(b"What is", b"Whatis ")
    response = await http.post(bots.url + "/slack/events", content=raw, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert bots.job_state("slack", body["event_id"]) == []


async def test_url_verification_echoes_the_challenge(bots: Bots, http: httpx.AsyncClient) -> None:
    response = await bots.slack_event(http, sample("url_verification"))
    assert response.status_code == 200
    assert response.json() == {"challenge": sample("url_verification")["challenge"]}


async def test_malformed_json_is_400_even_when_signed(bots: Bots, http: httpx.AsyncClient) -> None:
    response = await bots.slack_event(http, b'{"type": "event_callback", ')
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["reaction_added", "message_bot_message", "message_from_self",
                                  "message_changed", "app_mention_edited"])
async def test_unknown_events_and_bots_get_200_and_no_answer(
    bots: Bots, http: httpx.AsyncClient, name: str
) -> None:
    body = sample(name)
    body["event_id"] = f"Ev{uuid.uuid4().hex[:12].upper()}"
    response = await bots.slack_event(http, body)
    assert response.status_code == 200
    assert bots.job_state("slack", body["event_id"]) == []  # queued before acknowledged: none


async def test_unicode_and_emoji_survive_the_round_trip(bots: Bots, http: httpx.AsyncClient
                                                        ) -> None:
    body = mention("¿Cuál es la capital de España? 🇪🇸 Responde en español.")
    await bots.slack_event(http, body)
    [answer] = await answered(bots, body)
    assert answer.strip()
    ev = body["event"]
    assert bots.turns("slack", f"{TEAM_ID}:{ev['channel']}:{ev['ts']}")[0][1] == (
        "¿Cuál es la capital de España? 🇪🇸 Responde en español.")
