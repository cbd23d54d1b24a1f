"""Charla's one family of errors: every error it raises on purpose is a :class:`CharlaError`.

Each entry point maps them to HTTP statuses in one place (its app's exception handlers,
shared/http.exception_handlers). What each layer raises:

- the caller's fault: :class:`BadRequest` (400; :class:`PromptTooLong`, and the body's limits
  in shared/http.py), :class:`InvalidToken` (401); the knowledge base's refusals
  (shared/knowledge/store.KnowledgeError, functions/api/rag.NotReadable);
- our own configuration: :class:`ConfigError`, at start (charla's StartError too);
- our storage: :class:`StorageError` (the database; the queues' QueueError and
  DeadLetterError), :class:`SealError` for a stored body that does not open;
- a service we call, :class:`UpstreamError`: the model server seen from the functions
  (functions/model_client.ModelServerError), the engine seen from the gateway
  (model_server/engines/base.EngineError), a chat platform's API
  (functions/messaging.PlatformError), AWS (shared/aws.AwsError);
- the caller hanging up: shared/http.ClientLeft;
- the worker's verdict on a job, :class:`JobOutcome`: functions/worker/answer.Retry and
  GiveUp.
"""

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


class UpstreamError(CharlaError):
    """A service Charla called did not do what was asked: the model server, the engine, a chat
    platform's API, AWS. Each layer's own subclass says what to answer or whether to retry."""


class JobOutcome(CharlaError):
    """How a job's attempt ends other than done: the worker settles the job by it."""
