"""Discord's Ed25519 request signatures, checked by the production verifier."""

from __future__ import annotations

import pytest

from functions.discord.verify import SignatureVerifier
from shared.errors import ConfigError
from tests.functions.discord.events import raw_event
from tests.functions.discord.signing import ApplicationKeys

NOW = 1_738_577_730.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> ApplicationKeys:
    return ApplicationKeys()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(keys: ApplicationKeys, clock: Clock) -> SignatureVerifier:
    return SignatureVerifier(keys.public_key_hex, clock=clock)


@pytest.mark.parametrize("sample", ["ping", "ask_guild", "ask_unicode"])
def test_a_signed_interaction_is_valid(keys: ApplicationKeys, verifier: SignatureVerifier,
                                       sample: str) -> None:
    body = raw_event(sample)
    timestamp = str(int(NOW))
    assert verifier.is_valid(body, timestamp, keys.sign(timestamp, body))


def test_upper_case_hex_key_and_signature_are_accepted(keys: ApplicationKeys,
                                                        clock: Clock) -> None:
    verifier = SignatureVerifier(keys.public_key_hex.upper() + "\n", clock=clock)
    body, timestamp = raw_event("ping"), str(int(NOW))
    assert verifier.is_valid(body, timestamp, keys.sign(timestamp, body).upper())


def test_a_tampered_body_is_refused(keys: ApplicationKeys, verifier: SignatureVerifier) -> None:
    body, timestamp = raw_event("ask_guild"), str(int(NOW))
    signature = keys.sign(timestamp, body)
    tampered = body.replace(b"on-call rotation", b"admin password!!")
    assert tampered != body
    assert not verifier.is_valid(tampered, timestamp, signature)
    assert not verifier.is_valid(body + b" ", timestamp, signature)


def test_the_timestamp_is_part_of_what_is_signed(keys: ApplicationKeys,
                                                 verifier: SignatureVerifier) -> None:
    body, timestamp = raw_event("ping"), str(int(NOW))
    signature = keys.sign(timestamp, body)
    assert not verifier.is_valid(body, str(int(NOW) + 1), signature)


def test_a_signature_from_another_key_is_refused(verifier: SignatureVerifier) -> None:
    body, timestamp = raw_event("ping"), str(int(NOW))
    assert not verifier.is_valid(body, timestamp, ApplicationKeys().sign(timestamp, body))


@pytest.mark.parametrize(("timestamp", "signature"), [
    (None, "valid"),
    ("valid", None),
    ("", "valid"),
    ("valid", ""),
    ("valid", "zz" * 64),          # not hex
    ("valid", "abc"),              # odd length
    ("valid", "00" * 63),          # too short for Ed25519
    ("valid", "00" * 65),          # too long
    ("valid", "00" * 64),          # right length, wrong value
    ("valid", "valid-with-space"),
    (" 1738577730", "valid"),      # int() would accept these; Discord never sends them
    ("+1738577730", "valid"),
    ("1_738_577_730", "valid"),
    ("1738577730.5", "valid"),
    ("١٧٣٨٥٧٧٧٣٠", "valid"),         # Arabic-Indic digits
    ("9" * 5000, "valid"),
    ("\ud800", "valid"),           # cannot even be encoded
])
def test_missing_or_garbage_headers_are_refused(keys: ApplicationKeys,
                                                verifier: SignatureVerifier,
                                                timestamp: str | None,
                                                signature: str | None) -> None:
    body = raw_event("ping")
    good_timestamp = str(int(NOW))
    good_signature = keys.sign(good_timestamp, body)
    if timestamp == "valid":
        timestamp = good_timestamp
    if signature == "valid":
        # Signed over the garbage timestamp itself where that is possible, so only the
        # timestamp's shape can be what makes it fail.
        try:
            signature = keys.sign(timestamp or good_timestamp, body)
        except UnicodeEncodeError:
            signature = good_signature
    elif signature == "valid-with-space":
        signature = good_signature + " "
    assert verifier.is_valid(body, timestamp, signature) is False


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (-300, True), (300, True),
                                            (-301, False), (301, False), (-86_400, False)])
def test_timestamps_must_be_fresh(keys: ApplicationKeys, verifier: SignatureVerifier,
                                  offset: int, ok: bool) -> None:
    body = raw_event("ask_dm")
    timestamp = str(int(NOW) + offset)
    assert verifier.is_valid(body, timestamp, keys.sign(timestamp, body)) is ok


def test_a_captured_request_replayed_later_is_refused(keys: ApplicationKeys, clock: Clock,
                                                      verifier: SignatureVerifier) -> None:
    body, timestamp = raw_event("ask_guild"), str(int(NOW))
    signature = keys.sign(timestamp, body)
    assert verifier.is_valid(body, timestamp, signature)
    clock.now += 3600
    assert not verifier.is_valid(body, timestamp, signature)


def test_the_freshness_check_can_be_turned_off(keys: ApplicationKeys, clock: Clock) -> None:
    verifier = SignatureVerifier(keys.public_key_hex, max_age_s=None, clock=clock)
    body, timestamp = raw_event("ping"), "1000000000"
    assert verifier.is_valid(body, timestamp, keys.sign(timestamp, body))
    assert not verifier.is_valid(body, timestamp, ApplicationKeys().sign(timestamp, body))
    # Without the freshness check a timestamp is never parsed, only signed: still no exception.
    assert verifier.is_valid(body, "\ud800", keys.sign(timestamp, body)) is False


@pytest.mark.parametrize("key", ["", "not hex at all", "ab" * 31, "ab" * 33, "abc",
                                 "ab" * 32 + "zz"])
def test_a_malformed_public_key_is_a_config_error(key: str) -> None:
    with pytest.raises(ConfigError, match="DISCORD_PUBLIC_KEY"):
        SignatureVerifier(key)
