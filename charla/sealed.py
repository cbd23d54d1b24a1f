"""The sealed file of ``charla backup``: a header, then chunks sealed under a passphrase.

The header holds the format version, the scrypt parameters and salt, and a check that tells a
wrong passphrase from a damaged file. The payload follows in chunks of 1 MiB, each sealed with
AES-256-GCM under the key scrypt derives from the passphrase, and bound to the header, to its
position and to whether it is the last one (the STREAM construction,
https://eprint.iacr.org/2015/189): an altered header, or a chunk moved, dropped or cut off,
does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from shared.errors import ConfigError

MAGIC = b"charla-backup\n"
FORMAT_VERSION = 1
CHUNK = 1 << 20
# scrypt's interactive-login parameters of RFC 7914 section 2 raised to 128 MiB of memory:
# about half a second per guess here. A header may ask for at most 1 GiB.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_CHECK_LABEL = b"charla backup passphrase check"


class WrongPassphrase(ConfigError):
    """The passphrase does not open the backup."""


# The sealed file.

@dataclass(frozen=True)
class Kdf:
    n: int
    r: int
    p: int
    salt: bytes

    def key(self, passphrase: str) -> bytes:
        return Scrypt(salt=self.salt, length=32, n=self.n, r=self.r, p=self.p).derive(
            passphrase.encode("utf-8"))


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(8, "big") + bytes((last,)) + b"\0\0\0"


def _check(key: bytes) -> str:
    """Tells a wrong passphrase from a damaged file; derived from the key, it reveals nothing
    the first chunk would not."""
    return base64.b64encode(hmac.new(key, _CHECK_LABEL, hashlib.sha256).digest()[:16]).decode()


class SealedWriter:
    """Writes the header, then what it is given as sealed chunks; :meth:`close` seals the last."""

    def __init__(self, out: IO[bytes], passphrase: str, *, n: int = SCRYPT_N) -> None:
        kdf = Kdf(n, SCRYPT_R, SCRYPT_P, os.urandom(16))
        key = kdf.key(passphrase)
        head = json.dumps({"version": FORMAT_VERSION, "cipher": "AES-256-GCM",
                           "chunk": CHUNK, "kdf": {"name": "scrypt", "n": kdf.n, "r": kdf.r,
                                                   "p": kdf.p,
                                                   "salt": base64.b64encode(kdf.salt).decode()},
                           "check": _check(key)}).encode()
        self._header = MAGIC + len(head).to_bytes(4, "big") + head
        out.write(self._header)
        self._out, self._aead, self._counter, self._buffer = out, AESGCM(key), 0, bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > CHUNK:  # the last chunk is sealed only by close()
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _emit(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, last), plain, self._header)
        self._out.write(len(sealed).to_bytes(4, "big") + sealed)
        self._counter += 1


def read_header(source: IO[bytes], name: str) -> tuple[Kdf, str, bytes]:
    """The key derivation, the passphrase check and the header's bytes of a backup file."""
    not_ours = ConfigError(f"{name} is not a charla backup")
    if source.read(len(MAGIC)) != MAGIC:
        raise not_ours
    size = int.from_bytes(source.read(4), "big")
    raw = source.read(size) if size <= 4096 else b""
    try:
        head = json.loads(raw)
        kdf = head["kdf"]
        found = Kdf(int(kdf["n"]), int(kdf["r"]), int(kdf["p"]), base64.b64decode(kdf["salt"]))
        check = str(head["check"])
    except (ValueError, KeyError, TypeError):
        raise not_ours from None
    if head.get("version") != FORMAT_VERSION:
        raise ConfigError(f"{name} is a charla backup of format {head.get('version')!r}; this "
                          f"charla reads format {FORMAT_VERSION}: restore it with a newer one")
    if not (2 <= found.n <= 2**20 and 128 * found.n * found.r * found.p <= 2**30):
        raise not_ours  # a header that would have us spend more than 1 GiB on one guess
    return found, check, MAGIC + size.to_bytes(4, "big") + raw


def open_sealed(source: IO[bytes], name: str, passphrase: str) -> Iterator[bytes]:
    """The payload of a backup, chunk by chunk; :class:`WrongPassphrase` before the first
    when the passphrase is not the one it was sealed with."""
    kdf, check, header = read_header(source, name)
    key = kdf.key(passphrase)
    if not hmac.compare_digest(_check(key), check):
        raise WrongPassphrase(f"the passphrase does not open {name}")
    return _chunks(source, name, AESGCM(key), header)


def _chunks(source: IO[bytes], name: str, aead: AESGCM, header: bytes) -> Iterator[bytes]:
    damaged = ConfigError(f"{name} is damaged or was altered: it does not open past its "
                          "header (no part of it was restored)")
    counter, size = 0, source.read(4)
    while True:
        body = source.read(int.from_bytes(size, "big")) if len(size) == 4 else b""
        if len(size) != 4 or len(body) != int.from_bytes(size, "big"):
            raise damaged
        size = source.read(4)
        try:
            yield aead.decrypt(_nonce(counter, not size), body, header)
        except InvalidTag:
            raise damaged from None
        if not size:
            return
        counter += 1


class Payload:
    """Reads exactly ``n`` bytes at a time from the opened chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            more = next(self._chunks, None)
            if more is None:
                break
            self._buffer += more
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def rest(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._buffer
            self._buffer = b""
        yield from self._chunks
