"""Validation of OpenAI-style embedding requests, shared by the API and the model server's
gateway: both are trust boundaries, and both name the field at fault (OpenAI's ``param``).

OpenAI's shape: ``input`` a string or a list of them (token arrays are not taken: the model
has a tokenizer of its own), ``encoding_format`` ``float`` or ``base64``, ``dimensions`` only
as the model's own (the vectors cannot be shortened and stay what they are). Charla's
``input_type`` says whether the texts are search queries or passages (e5 reads them apart);
OpenAI's clients leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequest

# multilingual-e5-small's, which every embedder must give (the model server's own, or one at a
# URL): the knowledge base's columns hold vectors of this size (shared/migrations/0003).
DIMENSIONS = 384
MAX_INPUTS = 2048  # texts in one request, as OpenAI allows
INPUT_TYPES = ("query", "passage")


@dataclass(frozen=True)
class EmbeddingsRequest:
    texts: list[str]
    model: str | None
    input_type: str
    encoding_format: str


def parse_embeddings_request(body: dict[str, Any], *, dim: int,
                             default_input_type: str = "passage") -> EmbeddingsRequest:
    """The request, checked; :class:`BadRequest` naming what is wrong. ``dim``: the model's
    dimensions, the only ``dimensions`` a request may ask for."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise BadRequest("'input' must be a string or a non-empty list of strings", "input")
    if not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must hold strings (token arrays are not supported)", "input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"'input' holds more than {MAX_INPUTS} texts", "input")
    if any(not t.strip() for t in texts):
        raise BadRequest("'input' must not contain empty strings", "input")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    input_type = body.get("input_type", default_input_type)
    if input_type not in INPUT_TYPES:
        raise BadRequest("'input_type' must be 'query' or 'passage'", "input_type")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or dims != dim):
        raise BadRequest(f"this model has {dim} dimensions; 'dimensions' cannot change that",
                         "dimensions")
    return EmbeddingsRequest(texts, model, input_type, encoding)
