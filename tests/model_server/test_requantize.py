"""CHARLA_MODEL_QUANT=q4_0: the bundled model's Q4_1 weights requantized once to Q4_0, and
llama-server serving the copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

from model_server.engines.base import Usage
from model_server.engines.llama_server import bundled_model_path
from model_server.main import build_engine
from model_server.requantize import requantized
from shared.errors import ConfigError
from tests.conftest import make_settings


def _types(path: Path) -> dict[str, GGMLQuantizationType]:
    return {t.name: t.tensor_type for t in GGUFReader(path).tensors}


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return requantized(bundled_model_path(), tmp_path_factory.mktemp("home"))


def test_q4_1_weights_become_q4_0_and_everything_else_is_kept(copy: Path) -> None:
    before, after = _types(bundled_model_path()), _types(copy)
    assert list(after) == list(before)
    changed = [name for name in before if before[name] != after[name]]
    assert changed and all(before[n] == GGMLQuantizationType.Q4_1 for n in changed)
    assert all(after[n] == GGMLQuantizationType.Q4_0 for n in changed)
    assert GGMLQuantizationType.Q4_1 not in after.values()
    original, new = GGUFReader(bundled_model_path()), GGUFReader(copy)
    assert set(new.fields) == set(original.fields)
    for key in ("tokenizer.ggml.tokens", "tokenizer.chat_template", "llama.block_count"):
        assert new.fields[key].data == original.fields[key].data  # same layout...
        assert all(np.array_equal(new.fields[key].parts[i], original.fields[key].parts[i])
                   for i in original.fields[key].data)  # ...and the same values
    assert new.fields["general.file_type"].parts[-1][0] == 2  # MOSTLY_Q4_0


def test_the_copy_is_made_once(copy: Path) -> None:
    made = copy.stat().st_mtime_ns
    assert requantized(bundled_model_path(), copy.parent.parent) == copy
    assert copy.stat().st_mtime_ns == made
    assert not list(copy.parent.glob("*.partial"))


def test_a_model_without_q4_1_weights_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "tiny.gguf"
    writer = GGUFWriter(source, arch="llama")
    writer.add_tensor("w", np.ones((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigError, match="Q4_1"):
        requantized(source, tmp_path / "home")
    assert not any((tmp_path / "home" / "models").iterdir())


async def test_llama_server_serves_the_copy(llama_server_bin: Path, tmp_path: Path,
                                           copy: Path) -> None:
    settings = make_settings(CHARLA_HOME=str(copy.parent.parent),
                             CHARLA_LLAMA_SERVER_BIN=str(llama_server_bin),
                             CHARLA_MODEL_QUANT="q4_0", CHARLA_ENGINE_PARALLEL="2",
                             CHARLA_ENGINE_CTX_SIZE="2048")
    engine = build_engine(settings)
    assert engine._model_path == copy  # type: ignore[attr-defined]
    await engine.start()
    try:
        usage = Usage()
        result = await engine.complete(
            {"messages": [{"role": "user", "content": "What is the capital of France?"}],
             "max_tokens": 12, "temperature": 0}, usage)
    finally:
        await engine.close()
    assert result["choices"][0]["message"]["content"].strip()
    assert usage.completion_tokens > 0


def test_the_setting_takes_only_known_values() -> None:
    assert make_settings().model_quant == "original"
    assert make_settings(CHARLA_MODEL_QUANT="q4_0").model_quant == "q4_0"
    with pytest.raises(ConfigError):
        make_settings(CHARLA_MODEL_QUANT="q2_k")
