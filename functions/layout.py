"""How a grounded question is laid out for the model, for every door (functions/pipeline.py).

Measured with the bundled model (bench/prompt_layout.py; docs/benchmarks.md, "How a small
model is asked"): the passages, numbered and fenced, then the question and what to answer it
with, in its language, in one user message; the answer started with the words of the best
sentence before its figure ("primed"); one paragraph.
"""

from __future__ import annotations

from collections.abc import Sequence

from functions.answer_checks import Form
from functions.extractive import Extract
from shared.chat import Message, reference_message
from shared.knowledge.language import ENGLISH, SPANISH, detect
from shared.knowledge.search import Passage

# What a grounded question is asked with, in the question's language (bench/prompt_layout.py
# measured the layouts: docs/benchmarks.md, "How a small model is asked").
_ASKED = {
    ENGLISH: ("Question", "Answer the question from the passages only, in one or two "
              "sentences, with the exact figure, name or words the passage uses."),
    SPANISH: ("Pregunta", "Responde a la pregunta solo con lo que dicen los pasajes, en una o "
              "dos frases, con la cifra, el nombre o las palabras exactas que usa el pasaje."),
}
# A structured answer (JSON, or a tool call's arguments) takes its values from the passages.
_ASKED_VALUES = {
    ENGLISH: "Take every value from the passages only, with the exact figure, name or words "
             "the passage uses.",
    SPANISH: "Toma cada valor solo de lo que dicen los pasajes, con la cifra, el nombre o las "
             "palabras exactas que usa el pasaje.",
}
LEAD_WORDS = 8  # at most this many words of the best sentence start a primed answer
GROUNDED_STOP = "\n\n"  # a grounded answer is one paragraph (unless the asker sets stops)


def laid_out(question: Message, passages: Sequence[Passage], form: Form = Form.TEXT
             ) -> Message:
    """The message that asks ``question`` from ``passages``, for every door: the passages,
    numbered and fenced as reference material, then the question and what to answer it
    with, in its language. It takes the question's place, last, so that what came before
    stays a stable prefix for the engine's cache."""
    if not passages:
        return question
    text = str(question["content"])
    language = SPANISH if detect(text) == SPANISH else ENGLISH
    label, instruction = _ASKED[language]
    if form != Form.TEXT:
        instruction = _ASKED_VALUES[language]
    refs = reference_message([f"[{n}] Source: {p.citation}\n{p.content}"
                              for n, p in enumerate(passages, start=1)])
    return {"role": "user", "content": f"{refs['content']}\n\n{label}: {text}\n{instruction}"}


def lead(found: Extract | None) -> str:
    """The start of a primed answer: the words of ``found``, the passages' sentence that best
    answers the question (functions/extractive.py ``extract``), before its first figure (at
    most :data:`LEAD_WORDS`), for the model to go on from, copying the figure rather than
    making one up; "" when no sentence answers."""
    if found is None:
        return ""
    words: list[str] = []
    for word in found.sentence.split()[:LEAD_WORDS]:
        if any(c.isdigit() for c in word):
            break
        words.append(word)
    return " ".join(words)
