"""Data keys as the settings give them: the key file, and the ``CHARLA_DATA_KEYS`` list.

The key file (``CHARLA_DATA_KEY_FILE``) holds ``{"current": ID, "keys": {ID: base64}}``.

``charla up`` creates it under ``.charla/`` when no key is configured; ``charla keys rotate``
and ``retire`` change it. Every change replaces the whole file in one step (a reader sees the
old file or the new one, never half of either), mode 0600, under a lock that keeps two
changes at once from dropping each other's key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ConfigError

KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id):
        raise ConfigError(f"data key id {key_id[:70]!r} must be 1-64 letters, digits, . _ or -")
    return key_id


def decode_key(key_id: str, text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"data key {key_id!r} is not base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"data key {key_id!r} must be {KEY_BYTES} bytes (AES-256), "
                          f"got {len(key)}")
    return key


def parse_keys(spec: str) -> tuple[dict[str, bytes], str]:
    """``id:base64,id:base64`` (the first one current) as keys and the current id."""
    keys: dict[str, bytes] = {}
    for part in spec.split(","):
        key_id, sep, text = part.strip().partition(":")
        if not sep:
            raise ConfigError("CHARLA_DATA_KEYS must be id:base64key[,id:base64key...]")
        if check_id(key_id) in keys:
            raise ConfigError(f"CHARLA_DATA_KEYS names key {key_id!r} twice")
        keys[key_id] = decode_key(key_id, text)
    return keys, next(iter(keys))


def new_key() -> tuple[str, bytes]:
    """A fresh key and an id for it that sorts by creation day."""
    return f"k{time.strftime('%Y%m%d')}{secrets.token_hex(3)}", AESGCM.generate_key(256)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def read_key_file(path: Path) -> tuple[dict[str, bytes], str]:
    """The keys and the current key id of a key file: ``{"current": ID, "keys": {ID: b64}}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read data key file {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"data key file {path} is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise ConfigError(f"data key file {path} needs an object with \"current\" and \"keys\"")
    keys = {check_id(str(k)): decode_key(str(k), str(v)) for k, v in data["keys"].items()}
    current = data.get("current")
    if current not in keys:
        raise ConfigError(f"data key file {path}: \"current\" must name one of its keys")
    return keys, str(current)


def write_key_file(path: Path, keys: Mapping[str, bytes], current: str) -> None:
    """Replace the key file in one step (readers see the old file or the new), mode 0600."""
    if current not in keys:
        raise ValueError("the current key must be one of the keys")
    text = json.dumps({"current": current,
                       "keys": {check_id(k): encode_key(v) for k, v in keys.items()}}, indent=2)
    replace_private(path, (text + "\n").encode("utf-8"))


def replace_private(path: Path, data: bytes) -> None:
    """``path`` replaced in one step by ``data`` (readers see the old file or the new), mode
    0600, on disk before it takes the old one's place."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_key_file(path: Path) -> bool:
    """Create ``path`` (0600) holding one new current key, unless it exists; True if created.

    The file appears whole or not at all, and two creators at once keep the first one's key.
    """
    key_id, key = new_key()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    write_key_file(tmp, {key_id: key}, key_id)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises changes to a key file: two rotations at once must not drop each other's key."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_key(path: Path) -> str:
    """Add a new key to the key file and make it current; return its id."""
    with _locked(path):
        keys, _ = read_key_file(path)
        key_id, key = new_key()
        write_key_file(path, {key_id: key, **keys}, key_id)
    return key_id


def remove_key(path: Path, key_id: str) -> None:
    """Drop a key that is not current from the key file."""
    with _locked(path):
        keys, current = read_key_file(path)
        if key_id == current:
            raise ConfigError(f"data key {key_id!r} is current: rotate to a new key first")
        if keys.pop(key_id, None) is None:
            raise ConfigError(f"no data key {key_id!r} in {path}")
        write_key_file(path, keys, current)
