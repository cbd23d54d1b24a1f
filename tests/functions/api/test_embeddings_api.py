"""``POST /v1/embeddings`` through the API, with OpenAI's own client: the model server's
embedder answers, charged to the client's token budget like its chats."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import openai
import pytest
from limits.strategies import FixedWindowRateLimiter

from tests.conftest import Api, Gateway, spent
from tests.functions.api.test_api import openai_client


async def test_texts_are_embedded_and_charged_to_the_client(
    api: Api, gateway: Gateway, budget: FixedWindowRateLimiter
) -> None:
    client_id = f"embedder-{uuid.uuid4().hex[:6]}"
    texts = ["¿Cuántos días de vacaciones tengo?", "How many vacation days do I get?",
             "The deploy window closes at 16:00."]
    async with openai_client(api, sub=client_id) as client:
        # OpenAI's client asks for base64 and decodes it; any model name is served.
        answer = await client.embeddings.create(model="text-embedding-3-small", input=texts)
        floats = await client.embeddings.create(model="x", input=texts[0],
                                                encoding_format="float")
    vectors = np.array([d.embedding for d in sorted(answer.data, key=lambda d: d.index)])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    # The same question in two languages sits closer than either to the deploy window.
    similar = vectors @ vectors.T
    assert similar[0, 1] > similar[0, 2] and similar[0, 1] > similar[1, 2]
    assert np.allclose(floats.data[0].embedding, vectors[0], atol=1e-4)
    assert answer.model == "multilingual-e5-small" and answer.usage.prompt_tokens > 0
    used = answer.usage.prompt_tokens + floats.usage.prompt_tokens
    for _ in range(100):  # the gateway writes its charges a moment after answering
        if spent(budget, gateway, f"api:{client_id}") >= used:
            break
        await asyncio.sleep(0.1)
    assert spent(budget, gateway, f"api:{client_id}") == used


@pytest.mark.parametrize(("extra", "param"), [
    ({"input": []}, "input"),
    ({"input": [[1, 2, 3]]}, "input"),  # token arrays
    ({"input": ["ok", ""]}, "input"),
    ({"input": "ok", "dimensions": 256}, "dimensions"),
    ({"input": "ok", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "ok", "input_type": "document"}, "input_type"),
])
async def test_an_embedding_request_asked_wrongly_is_a_400_naming_the_field(
    api: Api, extra: dict[str, object], param: str
) -> None:
    async with openai_client(api) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.post("/embeddings", cast_to=object,
                              body={"model": "x", **extra})
    assert err.value.param == param


async def test_embeddings_need_a_token(api: Api) -> None:
    client = openai.AsyncOpenAI(base_url=api.url + "/v1", api_key="not-a-token", max_retries=0)
    async with client:
        with pytest.raises(openai.AuthenticationError):
            await client.embeddings.create(model="x", input="hello")
