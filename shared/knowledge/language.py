"""Telling Spanish from English, to pick the Postgres text-search configuration of a chunk.

The configuration decides stemming and stop words, so "vacaciones" matches "vacación" and
"policies" matches "policy". Guessing wrong costs more than not guessing (an English stemmer
mangles Spanish words), so anything short, mixed or in another language gets "simple", which
only lower-cases. The evidence is the share of very common function words of each language,
plus the letters and marks only Spanish uses (ñ, ¿, ¡, accented vowels).
"""

from __future__ import annotations

import re

SPANISH = "spanish"
ENGLISH = "english"
SIMPLE = "simple"

# Function words frequent in one language and rare in the other; words both use ("a", "no",
# "me", "he", "son", "final") are left out because they prove nothing.
_SPANISH_WORDS = frozenset({
    "el", "la", "los", "las", "de", "del", "que", "y", "en", "por", "para", "con", "un", "una",
    "unos", "unas", "es", "son", "está", "están", "se", "su", "sus", "al", "lo", "como", "más",
    "pero", "le", "les", "ya", "o", "u", "e", "este", "esta", "estos", "estas", "ese", "esa",
    "eso", "esto", "porque", "cuando", "muy", "sin", "sobre", "también", "hasta", "hay", "donde",
    "desde", "todo", "todos", "todas", "nos", "durante", "ni", "otro", "otra", "otros", "ellos",
    "ellas", "yo", "él", "qué", "cómo", "cuál", "cuándo", "dónde", "sí", "fue", "ser", "hace",
    "puede", "pueden", "tiene", "tienen", "debe", "deben", "entre", "según",
})
_ENGLISH_WORDS = frozenset({
    "the", "of", "and", "to", "in", "is", "are", "was", "were", "be", "been", "for", "with",
    "that", "this", "these", "those", "it", "its", "on", "as", "by", "at", "from", "or", "an",
    "have", "has", "had", "not", "but", "which", "you", "they", "we", "their", "will", "would",
    "can", "could", "should", "must", "there", "if", "than", "then", "also", "into", "about",
    "what", "when", "who", "how", "our", "your", "his", "her", "them", "do", "does", "did", "any",
    "all", "more",
})
# Function words of French, Portuguese, Italian and German that Spanish and English lack: text
# in those languages shares "de", "la", "que" with Spanish and must not be stemmed as Spanish.
_OTHER_WORDS = frozenset({
    "et", "est", "une", "des", "du", "il", "elle", "pas", "qui", "sur", "dans", "avec", "pour",
    "ce", "cette", "sont", "je", "vous", "nous", "mais", "aux", "não", "em", "um", "uma", "os",
    "dos", "das", "com", "ao", "são", "pelo", "pela", "isso", "di", "che", "è", "gli", "della",
    "sono", "questo", "der", "und", "ist", "nicht", "ein", "eine", "mit", "sich", "auf",
    "für", "von", "dem", "zu",
})
_WORD = re.compile(r"[^\W\d_]+")
_SPANISH_MARKS = re.compile(r"[ñ¿¡]")
_ACCENTS = re.compile(r"[áéíóú]")
_OTHER_MARKS = re.compile(r"[ãõçàèùâêîôûëïßäö]")

# At least this much evidence, and this share of all of it, for a language to be named.
_MIN_SCORE = 2.0
_MIN_SHARE = 0.75
# The opening of a long text says enough; reading all of it would only cost time.
_SAMPLE = 20_000


def detect(text: str) -> str:
    """``"spanish"``, ``"english"``, or ``"simple"`` when the text is too short or unclear."""
    sample = text[:_SAMPLE].lower()
    words = _WORD.findall(sample)
    if len(words) < 3:
        return SIMPLE
    spanish = float(sum(w in _SPANISH_WORDS for w in words))
    english = float(sum(w in _ENGLISH_WORDS for w in words))
    # ñ, ¿ and ¡ are near proof; accents are weaker (French and Portuguese use them too, and
    # English borrows "café"), so they count for less.
    spanish += 2 * len(_SPANISH_MARKS.findall(sample)) + 0.5 * len(_ACCENTS.findall(sample))
    other = float(sum(w in _OTHER_WORDS for w in words)) + len(_OTHER_MARKS.findall(sample))
    total = spanish + english + other
    if spanish >= _MIN_SCORE and spanish >= _MIN_SHARE * total:
        return SPANISH
    if english >= _MIN_SCORE and english >= _MIN_SHARE * total:
        return ENGLISH
    return SIMPLE
