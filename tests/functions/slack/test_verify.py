"""Slack request signatures: what passes, and every way a request is refused."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from functions.slack.verify import SignatureVerifier

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_718_000_100
BODY = (Path(__file__).parents[2] / "events" / "slack" / "app_mention_channel.json").read_bytes()


def verifier(secret: str = SECRET, now: float = NOW) -> SignatureVerifier:
    return SignatureVerifier(secret, clock=lambda: now)


def test_sign_is_slacks_v0_hmac() -> None:
    # Computed independently of the module under test, from Slack's published recipe.
    expected = hmac.new(SECRET.encode(), b"v0:%d:" % NOW + BODY, hashlib.sha256).hexdigest()
    assert verifier().sign(BODY, str(NOW)) == "v0=" + expected


def test_a_signed_request_is_valid() -> None:
    v = verifier()
    assert v.is_valid(BODY, str(NOW), v.sign(BODY, str(NOW)))


def test_a_tampered_body_is_refused() -> None:
    v = verifier()
    signature = v.sign(BODY, str(NOW))
    assert not v.is_valid(BODY.replace(b"on-call", b"off-call"), str(NOW), signature)
    assert not v.is_valid(BODY + b" ", str(NOW), signature)


def test_a_signature_made_with_another_secret_is_refused() -> None:
    signature = verifier("another-secret").sign(BODY, str(NOW))
    assert not verifier().is_valid(BODY, str(NOW), signature)


def test_the_timestamp_is_part_of_the_signature() -> None:
    v = verifier()
    assert not v.is_valid(BODY, str(NOW - 1), v.sign(BODY, str(NOW)))


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_five_minutes_are_accepted(offset: int) -> None:
    signer = verifier()
    stamp = str(NOW + offset)
    assert signer.is_valid(BODY, stamp, signer.sign(BODY, stamp))


@pytest.mark.parametrize("offset", [-301, -3600, 301, 86_400])
def test_stale_and_future_timestamps_are_refused(offset: int) -> None:
    # Signed correctly, but replayed too late (or stamped ahead of the clock).
    v = verifier()
    stamp = str(NOW + offset)
    assert not v.is_valid(BODY, stamp, v.sign(BODY, stamp))


def test_the_clock_is_read_at_each_check() -> None:
    now = [float(NOW)]
    v = SignatureVerifier(SECRET, clock=lambda: now[0])
    signature = v.sign(BODY, str(NOW))
    assert v.is_valid(BODY, str(NOW), signature)
    now[0] += 301
    assert not v.is_valid(BODY, str(NOW), signature)


@pytest.mark.parametrize("stamp", ["abc", "", " ", f" {NOW}", f"{NOW}.5", f"+{NOW}", "-1",
                                   "١٧١٨٠٠٠١٠٠", "9" * 40])
def test_malformed_timestamps_are_refused_without_an_exception(stamp: str) -> None:
    v = verifier()
    assert v.is_valid(BODY, stamp, v.sign(BODY, stamp)) is False


@pytest.mark.parametrize(("stamp", "signature"), [(None, "v0=00"), (str(NOW), None),
                                                  (None, None), (str(NOW), "")])
def test_missing_headers_are_refused(stamp: str | None, signature: str | None) -> None:
    assert verifier().is_valid(BODY, stamp, signature) is False


def test_a_signature_without_the_v0_prefix_is_refused() -> None:
    v = verifier()
    digest = v.sign(BODY, str(NOW)).removeprefix("v0=")
    assert not v.is_valid(BODY, str(NOW), digest)
    assert not v.is_valid(BODY, str(NOW), "v1=" + digest)


@pytest.mark.parametrize("signature", ["v0=", "v0=zz", "v0=ünïcödé", "v0=\udcff", "🚀" * 70])
def test_garbage_signatures_are_refused_without_an_exception(signature: str) -> None:
    assert verifier().is_valid(BODY, str(NOW), signature) is False


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        SignatureVerifier("")
