"""The moderation glue: the refusal's language, guard verdicts, and a failing guard model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from functions.model_client import ModelClient, ModelServerError
from functions.moderation import REFUSAL_EN, REFUSAL_ES, Moderation, parse_guard, refusal
from shared.moderation import parse_policy
from tests.conftest import Gateway, ServerThread, api_env, free_port, make_settings
from tests.fakes.guard import FakeGuard


@pytest.mark.parametrize(("asked", "expected"), [
    ("¿Cómo fabrico una bomba?", REFUSAL_ES),
    ("Quiero saber cómo se hace esto", REFUSAL_ES),
    ("¡bomba!", REFUSAL_ES),
    ("How do I build a bomb?", REFUSAL_EN),
    ("bomb", REFUSAL_EN),
    ("Comment fabriquer une bombe ?", REFUSAL_EN),
])
def test_the_refusal_speaks_the_askers_language(asked: str, expected: str) -> None:
    assert refusal(asked) == expected


@pytest.mark.parametrize(("answer", "verdict"), [
    ("safe", ()),
    ("  Safe\n", ()),
    ("unsafe\nS1", ("violence",)),
    ("unsafe\nS10,S11", ("hate", "self-harm")),
    ("unsafe: S4, S9", ("illicit/violent", "sexual/minors")),
    ("unsafe", ("unsafe",)),
    ("unsafe\nS99", ("s99",)),
    ("I'm here to help you with whatever you need.", None),
    ("", None),
])
def test_guard_verdicts(answer: str, verdict: tuple[str, ...] | None) -> None:
    assert parse_guard(answer) == verdict


@asynccontextmanager
async def moderation(gateway: Gateway, service_keys: tuple[str, str],
                     **env: str) -> AsyncIterator[Moderation]:
    """Checks with a guard model named "guard" and a one-rule policy."""
    settings = make_settings(**api_env(service_keys, gateway.url, "", "memory://",
                                       CHARLA_MODERATION_CLASSIFIER="guard", **env))
    model = ModelClient(settings)
    checks = Moderation(settings, model, None,
                        policy=parse_policy('[[rules]]\ncategory = "x"\nterms = ["blocked"]'))
    try:
        yield checks
    finally:
        await checks.close()
        await model.close()


async def test_a_failing_guard_fails_closed_by_default(gateway: Gateway,
                                                       service_keys: tuple[str, str]) -> None:
    # The bundled chat model stands in for a guard: it answers, but never with a verdict.
    async with moderation(gateway, service_keys) as closed:
        with pytest.raises(ModelServerError) as caught:
            await closed.check_input("What is two plus two?", (), sub="test:closed")
        assert (caught.value.status, caught.value.code) == (503, "moderation_unavailable")
        # The policy still answers first, without asking the guard.
        trip = await closed.check_input("this is blocked", (), sub="test:closed")
        assert trip is not None and (trip.source, trip.categories) == ("policy", ("x",))


async def test_a_failing_guard_can_fail_open(gateway: Gateway,
                                             service_keys: tuple[str, str]) -> None:
    async with moderation(gateway, service_keys, CHARLA_MODERATION_ON_ERROR="open") as opened:
        assert await opened.check_input("What is two plus two?", (), sub="test:open") is None
        assert await opened.check_output("Hi?", "Hello!", (), sub="test:open") is None


async def test_an_unreachable_guard_server_fails_closed(gateway: Gateway,
                                                        service_keys: tuple[str, str]) -> None:
    elsewhere = f"http://127.0.0.1:{free_port()}"
    async with moderation(gateway, service_keys,
                          CHARLA_MODERATION_CLASSIFIER_URL=elsewhere) as unreachable:
        assert unreachable.model_name == "charla-policy+guard"
        with pytest.raises(ModelServerError) as caught:
            await unreachable.check_input("Hello", (), sub="test:unreachable")
        assert caught.value.code == "moderation_unavailable"


async def test_moderation_can_be_switched_off(service_keys: tuple[str, str]) -> None:
    settings = make_settings(**api_env(service_keys, "http://127.0.0.1:9", "", "memory://",
                                       CHARLA_MODERATION_POLICY="off"))
    model = ModelClient(settings)
    off = Moderation(settings, model, None)
    assert off.policy is None and off.stream_check(()) is None
    assert await off.check_input("bomb", (), sub="test:off") is None
    await model.close()


async def test_a_guard_verdict_trips_input_and_output(gateway: Gateway,
                                                      service_keys: tuple[str, str]) -> None:
    guard = FakeGuard()
    server = ServerThread(guard.app()).start()
    try:
        async with moderation(gateway, service_keys,
                              CHARLA_MODERATION_CLASSIFIER_URL=server.url) as checks:
            trip = await checks.check_input("Help me plan the attack on Tuesday.", (),
                                            sub="test:guard")
            assert trip is not None
            assert (trip.stage, trip.source, trip.categories) == ("input", "classifier",
                                                                  ("violence",))
            assert await checks.check_input("What time is lunch?", (), sub="test:guard") is None
            out = await checks.check_output("Any plans?", "Yes: the attack starts at noon.", (),
                                            sub="test:guard")
            assert out is not None and out.stage == "output"
    finally:
        server.stop()
    assert all(body["model"] == "guard" for body in guard.asked) and len(guard.asked) == 3
