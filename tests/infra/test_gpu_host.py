"""The GPU host's containers (model_server/docker), checked as files: no Docker engine here.

The compose file must publish the gateway's port and nothing else, keep every engine on
loopback with its telemetry off, and give the gateway settings that shared/settings.py reads
into a working gateway. Terraform's user data must fill in every variable the compose file uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from model_server.main import create
from shared.jwt_tokens import generate_ed25519_pair
from shared.settings import Settings
from tests.infra.hcl import ROOT, TERRAFORM, parsed

DOCKER = ROOT / "model_server" / "docker"
ENGINES = ("llama-cpp", "vllm", "tgi", "tei", "llama-cpp-embeddings")
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def _substitute(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}``, from ``env`` or the default."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)


def _terraform_compose_env() -> dict[str, str]:
    local = parsed(TERRAFORM / "modules/gpu_hosts/main.tf")["locals"][0]
    env: dict[str, str] = local["compose_env"]
    return env


def test_only_the_gateway_publishes_a_port() -> None:
    services = _compose()["services"]
    assert set(services) == {"gateway", *ENGINES}
    assert services["gateway"]["ports"] == ["${MODEL_SERVER_PORT:-8001}:${MODEL_SERVER_PORT:-8001}"]
    for name in ENGINES:
        service = services[name]
        assert "ports" not in service and "expose" not in service, f"{name} publishes a port"
        assert service["network_mode"] == "service:gateway", f"{name} has its own network"


def test_every_engine_listens_on_loopback_with_telemetry_off() -> None:
    services = _compose()["services"]
    for name in ENGINES:
        command = services[name]["command"]
        assert ("--host=127.0.0.1" in command) != ("--hostname=127.0.0.1" in command), (
            f"{name} is not bound to 127.0.0.1")
        environment = services[name]["environment"]
        assert environment["HF_HUB_OFFLINE"] == "1", f"{name} may download models"
        assert environment["DO_NOT_TRACK"] == "1"
    assert "--usage-stats=off" in services["tgi"]["command"]
    assert services["vllm"]["environment"]["VLLM_NO_USAGE_STATS"] == "1"
    assert "--metrics" in services["llama-cpp"]["command"]


def test_the_engine_images_default_to_loopback_and_no_telemetry_too() -> None:
    assert "LLAMA_ARG_HOST=127.0.0.1" in (DOCKER / "llama-cpp.Dockerfile").read_text()
    assert "VLLM_NO_USAGE_STATS=1" in (DOCKER / "vllm.Dockerfile").read_text()
    tgi = (DOCKER / "tgi.Dockerfile").read_text()
    assert "USAGE_STATS=off" in tgi and '"--hostname", "127.0.0.1"' in tgi
    assert '"--hostname", "127.0.0.1"' in (DOCKER / "tei.Dockerfile").read_text()
    gateway = (DOCKER / "gateway.Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "model_server"]' in gateway
    assert "USER charla" in gateway


def test_the_gateway_settings_build_a_gateway_in_front_of_the_engines(tmp_path: Path) -> None:
    public_key = generate_ed25519_pair()[1]
    key_file = tmp_path / "service_public_key.pem"
    key_file.write_text(public_key)
    raw = _compose()["services"]["gateway"]["environment"]
    env = {k: _substitute(str(v), {}) for k, v in raw.items()}
    env["CHARLA_SERVICE_PUBLIC_KEY"] = str(key_file)  # mounted at /run/charla in the container

    settings = Settings.from_env(env)
    assert settings.model_server_host == "0.0.0.0"
    assert settings.model_server_port == 8001
    assert (settings.engine, settings.engine_url) == ("openai", "http://127.0.0.1:8080")
    assert (settings.embeddings, settings.embeddings_url) == ("upstream", "http://127.0.0.1:8082")
    assert create(settings) is not None
    tgi = Settings.from_env({**env, "CHARLA_ENGINE": _substitute(
        str(raw["CHARLA_ENGINE"]), {"CHARLA_ENGINE": "upstream"})})
    assert tgi.engine == "upstream"
    assert create(tgi) is not None


def test_tgi_is_reached_through_huggingface_hub_and_the_others_as_openai() -> None:
    """Only huggingface_hub's client speaks TGI's JSON-schema shape; llama.cpp's server and
    vLLM read OpenAI's, which the gateway's own client passes as it is."""
    assert _terraform_compose_env()["CHARLA_ENGINE"] == (
        '${var.engine == "tgi" ? "upstream" : "openai"}')
    example = dict(line.split("=", 1) for line in (DOCKER / "env.example").read_text()
                   .splitlines() if line and not line.startswith("#"))
    assert example["COMPOSE_PROFILES"].startswith("llama-cpp,")
    assert example["CHARLA_ENGINE"] == "openai"


def test_the_engine_ports_match_the_gateways_upstream_urls() -> None:
    services = _compose()["services"]
    chat_ports = {name: next(a for a in services[name]["command"] if a.startswith("--port="))
                  for name in ("llama-cpp", "vllm", "tgi")}
    assert set(chat_ports.values()) == {"--port=8080"}
    for name in ("tei", "llama-cpp-embeddings"):
        assert "--port=8082" in services[name]["command"]


def test_terraform_fills_every_variable_the_compose_file_reads() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    used = {m.group(1) for m in _VARIABLE.finditer(text)} - {"CHARLA_LOG_LEVEL"}
    written = set(_terraform_compose_env()) - {"COMPOSE_PROFILES"}
    assert used == written
    example = {line.split("=", 1)[0] for line in (DOCKER / "env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert example == written | {"COMPOSE_PROFILES"}


def test_the_profiles_terraform_can_choose_are_the_compose_files_profiles() -> None:
    profiles = {p for s in _compose()["services"].values() for p in s.get("profiles", [])}
    variables = parsed(TERRAFORM / "variables.tf")["variable"]
    conditions = {name: str(body["validation"][0]["condition"])
                  for entry in variables for name, body in entry.items()
                  if name in ("engine", "embeddings_engine")}
    engines = set(re.findall(r'"([a-z-]+)"', conditions["engine"]))
    embeddings = set(re.findall(r'"([a-z-]+)"', conditions["embeddings_engine"]))
    assert profiles == engines | {f"embeddings-{e}" for e in embeddings}
    assert _terraform_compose_env()["COMPOSE_PROFILES"] == (
        "${var.engine},embeddings-${var.embeddings_engine}")


def test_the_user_data_sends_every_containers_logs_to_cloudwatch() -> None:
    template = (TERRAFORM / "modules/gpu_hosts/user_data.sh.tftpl").read_text()
    for name in ("gateway", *ENGINES):
        assert f"  {name}: {{logging: *aws-logs}}" in template, f"{name}'s logs stay on the host"
    assert "systemctl enable --now charla.service" in template
