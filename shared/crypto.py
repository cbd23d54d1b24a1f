"""Message bodies sealed at rest: AES-256-GCM under named data keys.

A sealed body describes itself: a version byte, the id of the key that sealed it, a random
96-bit nonce, then the ciphertext with its 16-byte tag. The caller passes associated data that
names the row the body belongs to (its table, its conversation), so a body copied into another
row does not open; the version byte and key id are authenticated too.

The keys come from one of two settings. ``CHARLA_DATA_KEYS`` (``id:base64,id:base64``, the
first one current) is fixed for the life of the process: on AWS it lives in the app secret.
``CHARLA_DATA_KEY_FILE`` names a JSON file (``charla up`` creates ``.charla/data-keys.json``);
a ring read from a file notices when the file is replaced (``charla keys rotate``) and seals
with its new current key from then on, without a restart. One ``stat`` per seal is the price:
about a microsecond (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ConfigError, SealError, UnknownKey
from shared.keyfile import check_id, parse_keys, read_key_file
from shared.settings import Settings

log = logging.getLogger(__name__)

VERSION = 1
NONCE_BYTES = 12
DIGEST_LABEL = b"charla digest v1"  # derives a data key's digest key (KeyRing.digest)
NO_KEY = ("no data key to seal message bodies with: set CHARLA_DATA_KEYS or "
          "CHARLA_DATA_KEY_FILE (charla up creates .charla/data-keys.json)")


@dataclass(frozen=True)
class _Ring:
    ciphers: dict[str, AESGCM]
    current: str | None
    stamp: tuple[int, int, int] | None = None  # the key file's inode, size, mtime when read
    digest_keys: dict[str, bytes] = field(default_factory=dict)


def _ring(keys: Mapping[str, bytes], current: str | None,
          stamp: tuple[int, int, int] | None = None) -> _Ring:
    # Digests use a key of their own derived from each data key, never the sealing key itself.
    return _Ring({check_id(k): AESGCM(v) for k, v in keys.items()}, current, stamp,
                 {k: hmac.new(v, DIGEST_LABEL, hashlib.sha256).digest() for k, v in keys.items()})


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def header(blob: bytes) -> tuple[str, int]:
    """The key id a sealed body names, and where its nonce starts."""
    if len(blob) < 2 or blob[0] != VERSION:
        raise SealError("not a sealed body (unknown format version)")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + 16:
        raise SealError("sealed body is truncated")
    try:
        return blob[2:end].decode("ascii"), end
    except UnicodeDecodeError:
        raise SealError("sealed body has a malformed key id") from None


class KeyRing:
    """Named 256-bit keys, one of them current: new bodies are sealed with it, and a body
    sealed with any key of the ring opens."""

    def __init__(self, keys: Mapping[str, bytes] | None = None, current: str | None = None,
                 *, path: Path | None = None) -> None:
        keys = dict(keys or {})
        if current is None and keys:
            current = next(iter(keys))
        if current is not None and current not in keys:
            raise ConfigError(f"the current data key {current!r} is not in the ring")
        self.path = path
        self._lock = threading.Lock()
        self._state = _ring(keys, current)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """A ring that follows ``path``: when the file is replaced, its new keys apply."""
        ring = cls(path=path)
        stamp = _stamp(path)
        ring._state = _ring(*read_key_file(path), stamp)
        if stamp is not None and os.stat(path).st_mode & 0o077:
            log.warning("data key file %s can be read by other users: chmod 600 it", path)
        return ring

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring the settings name; an empty one (it seals nothing) when none is set."""
        if settings.data_keys and settings.data_key_file:
            raise ConfigError("set CHARLA_DATA_KEYS or CHARLA_DATA_KEY_FILE, not both")
        if settings.data_keys:
            return cls(*parse_keys(settings.data_keys.reveal()))
        if settings.data_key_file:
            return cls.from_file(settings.data_key_file)
        return cls()

    def __repr__(self) -> str:  # ids only: never the keys
        state = self._state
        return f"KeyRing(current={state.current!r}, ids={sorted(state.ciphers)!r})"

    @property
    def current_id(self) -> str | None:
        return self._fresh().current

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._fresh().ciphers))

    def require(self) -> str:
        """The current key id; :class:`ConfigError` when the ring has none (call at start)."""
        current = self._fresh().current
        if current is None:
            raise ConfigError(NO_KEY)
        return current

    def refresh(self) -> None:
        """Read the key file again if it was replaced since it was last read."""
        if self.path is None:
            return
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._state.stamp:
            return
        with self._lock:
            if stamp == self._state.stamp:
                return
            try:
                self._state = _ring(*read_key_file(self.path), stamp)
            except ConfigError as exc:
                # A broken file must not stop a running process: keep the keys it has.
                log.error("data keys not reloaded: %s", exc)
                self._state = replace(self._state, stamp=stamp)
                return
            log.info("data keys reloaded from %s: current key %s", self.path,
                     self._state.current)

    def _fresh(self) -> _Ring:
        self.refresh()
        return self._state

    def digest(self, text: str) -> bytes:
        """A keyed digest of ``text`` (HMAC-SHA256 under a key derived from the current data
        key): to find a record by a value that must not be stored itself."""
        state = self._fresh()
        if state.current is None:
            raise ConfigError(NO_KEY)
        return hmac.new(state.digest_keys[state.current], text.encode(), hashlib.sha256).digest()

    def digests(self, text: str) -> list[bytes]:
        """``text``'s digest under every key of the ring: what a lookup matches, across a
        rotation."""
        keys = self._fresh().digest_keys.values()
        return [hmac.new(k, text.encode(), hashlib.sha256).digest() for k in keys]

    def seal(self, plaintext: str, aad: bytes) -> bytes:
        """``plaintext`` sealed with the current key, bound to ``aad``."""
        state = self._fresh()
        if state.current is None:
            raise ConfigError(NO_KEY)
        key_id = state.current.encode("ascii")
        head = bytes((VERSION, len(key_id))) + key_id
        nonce = os.urandom(NONCE_BYTES)
        return head + nonce + state.ciphers[state.current].encrypt(
            nonce, plaintext.encode("utf-8"), head + aad)

    def open(self, blob: bytes, aad: bytes) -> str:
        """The text of a sealed body; :class:`SealError` if it was altered, moved to another
        row, or sealed with another key of the same id; :class:`UnknownKey` if its key is not
        in the ring."""
        key_id, start = header(blob)
        cipher = self._state.ciphers.get(key_id)
        if cipher is None:
            cipher = self._fresh().ciphers.get(key_id)
            if cipher is None:
                raise UnknownKey(f"a body is sealed with data key {key_id!r}, which this "
                                 "process does not have (CHARLA_DATA_KEYS or "
                                 "CHARLA_DATA_KEY_FILE)")
        try:
            plain = cipher.decrypt(blob[start:start + NONCE_BYTES], blob[start + NONCE_BYTES:],
                                   blob[:start] + aad)
        except InvalidTag:
            raise SealError(f"a body sealed with data key {key_id!r} does not open: altered, "
                            "moved from another row, or a different key under that id"
                            ) from None
        return plain.decode("utf-8")


def sealed_key_id(blob: bytes) -> str:
    """The id of the key that sealed ``blob`` (no key needed)."""
    return header(blob)[0]
