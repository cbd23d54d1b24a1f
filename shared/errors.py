"""Errors raised by the shared layer; each entry point maps them to HTTP statuses in one place."""

from __future__ import annotations


class CharlaError(Exception):
    """Base class for every error Charla raises on purpose."""


class ConfigError(CharlaError):
    """A setting is missing or malformed; raised at start, never inside a request."""


class StorageError(CharlaError):
    """The database could not be reached or refused a statement."""


class InvalidToken(CharlaError):
    """A JWT is missing, malformed, expired, or signed by someone we do not trust."""


class BadRequest(CharlaError):
    """The caller sent something we cannot act on; the message is safe to show them."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param  # the request field at fault, for OpenAI's error ``param``


class PromptTooLong(BadRequest):
    """The messages cannot fit the model's context window even after trimming old turns."""


class SealError(CharlaError):
    """A sealed message body does not open: altered, moved from another row, or a wrong key."""


class UnknownKey(SealError):
    """A sealed message body names a data key this process does not have."""
