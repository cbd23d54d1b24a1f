"""Sealing bodies at rest: round trips, bound to their row, tamper-evident, keys never shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest

from shared.crypto import KeyRing, sealed_key_id
from shared.errors import ConfigError, SealError, UnknownKey
from shared.keyfile import add_key, create_key_file, read_key_file, remove_key
from shared.settings import Settings

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
AAD = b"turns\0" + b"42"


def spec(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{i}:{base64.b64encode(k).decode()}" for i, k in pairs)


def test_a_sealed_body_opens_and_names_its_key() -> None:
    ring = KeyRing({"a": KEY_A})
    text = "¿Nos vemos a las 10? 🙂 " * 20
    blob = ring.seal(text, AAD)
    assert text.encode() not in blob and b"vemos" not in blob
    assert sealed_key_id(blob) == "a"
    assert ring.open(blob, AAD) == text
    # A random nonce each time: the same text never seals to the same bytes.
    assert ring.seal(text, AAD) != blob


def test_a_body_moved_to_another_row_does_not_open() -> None:
    ring = KeyRing({"a": KEY_A})
    blob = ring.seal("the plans", AAD)
    with pytest.raises(SealError, match="moved from another row"):
        ring.open(blob, b"turns\0" + b"43")


@pytest.mark.parametrize("where", [-1, -20, 5])
def test_a_tampered_body_does_not_open(where: int) -> None:
    ring = KeyRing({"a": KEY_A})
    blob = bytearray(ring.seal("the plans", AAD))
    blob[where] ^= 0x01
    with pytest.raises(SealError):
        ring.open(bytes(blob), AAD)


def test_malformed_blobs_are_refused_clearly() -> None:
    ring = KeyRing({"a": KEY_A})
    for blob in (b"", b"\x02\x01a" + bytes(40), b"\x01\x01a" + bytes(5)):
        with pytest.raises(SealError):
            ring.open(blob, AAD)


def test_an_unknown_key_is_named_in_the_error() -> None:
    blob = KeyRing({"old": KEY_A}).seal("x", AAD)
    with pytest.raises(UnknownKey, match="'old'"):
        KeyRing({"new": KEY_B}).open(blob, AAD)
    # The same id with another key is not mistaken for the right one.
    with pytest.raises(SealError, match="different key"):
        KeyRing({"old": KEY_B}).open(blob, AAD)


def test_the_first_key_is_current_and_older_ones_still_open() -> None:
    old = KeyRing.from_settings(Settings.from_env({"CHARLA_DATA_KEYS": spec(("a", KEY_A))}))
    blob = old.seal("before", AAD)
    both = KeyRing.from_settings(Settings.from_env(
        {"CHARLA_DATA_KEYS": spec(("b", KEY_B), ("a", KEY_A))}))
    assert both.current_id == "b" and both.ids == ("a", "b")
    assert both.open(blob, AAD) == "before"
    assert sealed_key_id(both.seal("after", AAD)) == "b"


def test_no_key_seals_nothing_and_says_what_to_set() -> None:
    ring = KeyRing.from_settings(Settings.from_env({"DATABASE_URL": "postgresql://x/y"}))
    with pytest.raises(ConfigError, match="CHARLA_DATA_KEYS"):
        ring.seal("x", AAD)
    with pytest.raises(ConfigError, match="charla up"):
        ring.require()


@pytest.mark.parametrize("value", ["nocolon", "a:notbase64!", "a:" + "QUFB", "bad id:" +
                                   base64.b64encode(KEY_A).decode(), spec(("a", KEY_A)) * 2])
def test_malformed_key_settings_fail_at_start(value: str) -> None:
    with pytest.raises(ConfigError):
        KeyRing.from_settings(Settings.from_env({"CHARLA_DATA_KEYS": value}))


def test_keys_never_print(tmp_path: Path) -> None:
    encoded = base64.b64encode(KEY_A).decode()
    settings = Settings.from_env({"CHARLA_DATA_KEYS": f"a:{encoded}"})
    ring = KeyRing.from_settings(settings)
    for text in (repr(settings), str(settings), repr(settings.data_keys), repr(ring), str(ring)):
        assert encoded not in text and encoded[:12] not in text
    assert "'a'" in repr(ring)


def test_both_sources_at_once_is_an_error(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k.json")
    with pytest.raises(ConfigError, match="not both"):
        KeyRing.from_settings(Settings.from_env({"CHARLA_DATA_KEYS": spec(("a", KEY_A)),
                                                 "CHARLA_DATA_KEY_FILE": str(tmp_path / "k.json")}))


def test_the_key_file_is_private_and_never_replaced_by_start(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    assert create_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    assert create_key_file(path) is False
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["data-keys.json"]  # no temporary left


def test_a_ring_follows_its_file_when_a_key_is_added(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    create_key_file(path)
    writer, reader = KeyRing.from_file(path), KeyRing.from_file(path)  # two processes
    old = writer.require()
    before = writer.seal("before", AAD)
    new = add_key(path)
    assert new != old and read_key_file(path)[1] == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    after = writer.seal("after", AAD)  # no restart: the next seal uses the new key
    assert sealed_key_id(after) == new
    assert reader.open(after, AAD) == "after" and reader.open(before, AAD) == "before"
    with pytest.raises(ConfigError, match="current"):
        remove_key(path, new)
    remove_key(path, old)
    writer.refresh()  # as on its next seal
    with pytest.raises(UnknownKey):
        writer.open(before, AAD)


def test_a_broken_key_file_keeps_the_keys_a_process_has(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    create_key_file(path)
    ring = KeyRing.from_file(path)
    blob = ring.seal("x", AAD)
    path.write_text("{not json")
    os.utime(path, ns=(1, 1))
    assert ring.open(ring.seal("y", AAD), AAD) == "y"
    assert ring.open(blob, AAD) == "x"


def test_digests_are_keyed_stable_and_found_across_a_rotation() -> None:
    old, new = os.urandom(32), os.urandom(32)
    ring = KeyRing({"old": old}, "old")
    rotated = KeyRing({"new": new, "old": old}, "new")
    digest = ring.digest("slack:T1:U1")
    assert digest == KeyRing({"old": old}, "old").digest("slack:T1:U1")  # stable
    assert len(digest) == 32 and digest != ring.digest("slack:T1:U2")
    assert digest != hashlib.sha256(b"slack:T1:U1").digest()  # keyed: not a plain hash
    assert digest != hmac.new(old, b"slack:T1:U1", hashlib.sha256).digest()  # nor the data key
    assert rotated.digest("slack:T1:U1") != digest
    assert digest in rotated.digests("slack:T1:U1")  # a lookup still finds the old record
    with pytest.raises(ConfigError, match="CHARLA_DATA_KEYS"):
        KeyRing().digest("slack:T1:U1")
