"""The model asked whether the passages found state the answer, before it answers from them.

Off by default (``CHARLA_ANSWER_JUDGE``). The answerability rule (functions/answerability.py)
refuses a question whose passages miss a place, a product or a code it names, and nothing
else: "How many people fit in the Fenway room?" over a passage that names the room and gives
another room's size passes it, since whether a passage states what is asked is beyond matching
words. A model reading the question beside its passages can tell; the bundled 135M model
cannot (docs/benchmarks.md, "How a small model is asked": its yes and no do not follow the
passages), so this step is for a deployment whose model server runs a larger model, measured
on its own questions first (``python -m bench.prompt_layout --steps 3 --judge-url URL``).

When on, a question the rule lets through is put to the chat model once more, with its
passages fenced as reference material, for one word: yes or no. "No" ends the answer with "I
don't know" and the closest sources, as the rule's refusal does; "yes", an answer that is
neither, a model server error and a timeout all leave the answer to the rule (and to the fact
check, which still reads what the model then writes). It costs one short completion: the
passages' prefill and a token or two.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from functions.factcheck import fold
from functions.model_client import ModelClient, ModelServerError
from shared.chat import Message, reference_message
from shared.knowledge.search import Passage
from shared.redact import redact_messages

log = logging.getLogger(__name__)

JUDGE_TOKENS = 3
INSTRUCTION = (
    "You check whether reference passages state the answer to a question. Answer with one "
    "word: yes if a passage states the answer itself (the figure, date, name or rule asked "
    "for, about the same place, person or thing the question names), no if the passages only "
    "speak of the topic, or of another place, person or thing.")
_YES = re.compile(r"^\W*(yes|si)\b")
_NO = re.compile(r"^\W*no\b")


def judge_messages(question: str, passages: Sequence[Passage]) -> list[Message]:
    """What the model is asked: the instruction, the passages fenced as reference material,
    then the question."""
    return [{"role": "system", "content": INSTRUCTION},
            reference_message([f"Source: {p.citation}\n{p.content}" for p in passages]),
            {"role": "user", "content": f"Question: {question}\n"
                                        "Do the passages state the answer? Answer yes or no."}]


def verdict(said: str) -> bool | None:
    """The model's yes (True) or no (False); None for anything else."""
    folded = fold(said)
    if _YES.match(folded):
        return True
    if _NO.match(folded):
        return False
    return None


async def judged(model: ModelClient, question: str, passages: Sequence[Passage], *,
                 sub: str, timeout_s: float, redact: bool = False) -> bool | None:
    """Whether the model says ``passages`` state the answer to ``question``; None when it
    says neither, fails or takes longer than ``timeout_s`` (logged: the rule's verdict then
    stands)."""
    messages = judge_messages(question, passages)
    body = {"messages": redact_messages(messages) if redact else messages,
            "max_tokens": JUDGE_TOKENS, "temperature": 0, "stream": False}
    try:
        result = await asyncio.wait_for(model.complete(body, sub=sub), timeout_s)
        said = str(result["choices"][0]["message"]["content"] or "")
    except ModelServerError as exc:
        log.warning("answer judge failed (%s %s); answering on the rule alone",
                    exc.status, exc.message)
        return None
    except TimeoutError:
        log.warning("answer judge timed out after %.1f s; answering on the rule alone",
                    timeout_s)
        return None
    except (KeyError, IndexError, TypeError) as exc:
        log.warning("answer judge gave a malformed answer (%s); answering on the rule alone",
                    exc.__class__.__name__)
        return None
    found = verdict(said)
    if found is None:
        log.info("answer judge said neither yes nor no; answering on the rule alone")
    return found
