"""The moderation policy: blocked terms and patterns by category, per deployment and per scope.

A policy is a TOML file (``CHARLA_MODERATION_POLICY``) of ``[[rules]]``, each with a
``category``, ``terms`` (whole words, matched without regard to case or accents: "Ódio"
matches "odio", "class" never matches "ass"), ``patterns`` (regular expressions over the same
normalised text: lower case, accents removed) and ``applies_to`` (``["input", "output"]`` by
default). ``[scope."<key>"]`` sections add ``rules`` and ``disable`` categories for one
principal (``slack:T1:C2``, ``slack:T1``, ``telegram:-100…``, ``discord:G1``, ``api:CLIENT``)
or one collection (``collection:hr``).

Scopes are laid over the global rules from the broadest to the most specific: collections,
then principals from the workspace to the channel. Each layer first switches off the
categories it disables in what came before it, then adds its own rules; so a channel can bring
back a category its workspace switched off.

Pure: loading reads the file once. The rules in force for a set of scopes and a stage are
compiled once (:class:`Matcher`, cached on the policy): terms are looked up word by word, and
patterns are one compiled expression, searched again per category only when it matched.
"""

from __future__ import annotations

import re
import threading
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from shared.errors import ConfigError

Stage = Literal["input", "output"]
STAGES: tuple[Stage, ...] = ("input", "output")
COLLECTION_PREFIX = "collection:"
BUNDLED = "moderation_policy.toml"

# Combining marks of the Latin, Greek and Cyrillic scripts, left alone by NFKD as separate
# characters: dropped, so "ó" (o + U+0301) compares as "o".
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
_WORD = re.compile(r"\w+")
_NO_BOUND = 1 << 16  # a longest match at least this long counts as unbounded (``x*`` and kin)


def normalise(text: str) -> str:
    """``text`` as rules see it: compatibility forms unfolded, accents dropped, case folded."""
    return _MARKS.sub("", unicodedata.normalize("NFKD", text)).casefold()


@dataclass(frozen=True)
class Rule:
    category: str
    terms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    stages: frozenset[str] = frozenset(STAGES)

    def expression(self) -> str:
        """One regular expression (source) matching any of the rule's terms or patterns."""
        parts = [_term_expression(t) for t in sorted(self.terms, key=len, reverse=True)]
        parts += [f"(?:{p})" for p in self.patterns]
        return "|".join(parts)


@dataclass(frozen=True)
class Layer:
    """One ``[scope."…"]`` section."""

    rules: tuple[Rule, ...] = ()
    disable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    categories: tuple[str, ...] = ()  # the categories that matched, sorted; empty: clean

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


CLEAN = Verdict()


class Matcher:
    """The rules in force for one set of scopes and one stage, compiled once.

    Terms made of words are looked up word by word in a dictionary keyed by their first word,
    so a policy of thousands of terms costs about what one of them does; patterns (and terms
    with other characters) share one compiled expression, searched once, with a second pass
    per category only when it matched.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._words: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        sources: dict[str, list[str]] = {}
        categories: set[str] = set()
        for rule in rules:
            categories.add(rule.category)
            for term in rule.terms:
                words = tuple(normalise(term).split())
                if all(_WORD.fullmatch(w) for w in words):
                    self._words.setdefault(words[0], []).append((words[1:], rule.category))
                else:
                    sources.setdefault(rule.category, []).append(_term_expression(term))
            if rule.patterns:
                sources.setdefault(rule.category, []).extend(f"(?:{p})" for p in rule.patterns)
        self.categories = tuple(sorted(categories))
        self._each = [(category, re.compile("|".join(found), re.IGNORECASE))
                      for category, found in sorted(sources.items())]
        everything = "|".join(f"(?:{rx.pattern})" for _, rx in self._each)
        self._any = re.compile(everything, re.IGNORECASE) if everything else None
        # For text checked a piece at a time (StreamCheck): how far back a match that reaches
        # into the new piece can start. Terms: a number of words. Expressions: their longest
        # match, where it is bounded; those without a bound are searched over the whole window.
        self.term_words = max((len(rest) + 1 for found in self._words.values()
                               for rest, _ in found), default=0)
        bounded: list[tuple[int, str]] = []
        unbounded: list[str] = []
        for found in sources.values():
            for source in found:
                width = _longest_match(source)
                if width is None:
                    unbounded.append(source)
                else:
                    bounded.append((width, source))
        self.bounded_width = max((w for w, _ in bounded), default=0)
        self._bounded = (re.compile("|".join(f"(?:{src})" for _, src in bounded), re.IGNORECASE)
                         if bounded else None)
        self._unbounded = (re.compile("|".join(f"(?:{src})" for src in unbounded), re.IGNORECASE)
                           if unbounded else None)

    def check(self, text: str) -> Verdict:
        """The categories ``text`` trips."""
        return self.check_normalised(normalise(text))

    def check_normalised(self, text: str, start: int = 0) -> Verdict:
        """Like :meth:`check`, for text already normalised, looking from ``start`` on (moved
        back to the start of the word it falls in)."""
        start = _word_start(text, start)
        found = self._term_hits(text, start)
        if self._any is not None and self._any.search(text, start) is not None:
            found.update(c for c, rx in self._each if rx.search(text, start))
        return Verdict(tuple(sorted(found))) if found else CLEAN

    def check_added(self, text: str, added: int, window: int) -> Verdict:
        """Like :meth:`check_normalised`, for text whose first ``added`` characters were
        checked already: only what could match now that more has come, looking back at most
        ``window`` characters (terms: as many words as the longest term has; expressions with
        a bounded match: as far as their longest match)."""
        floor = max(0, added - window)
        found = (self._term_hits(text, _words_back(text, added, self.term_words - 1, floor))
                 if self._words else set())
        hit = (self._bounded is not None and self._bounded.search(
                   text, _word_start(text, max(floor, added - self.bounded_width))) is not None) \
            or (self._unbounded is not None
                and self._unbounded.search(text, _word_start(text, floor)) is not None)
        if hit:
            start = _word_start(text, floor)
            found.update(c for c, rx in self._each if rx.search(text, start))
        return Verdict(tuple(sorted(found))) if found else CLEAN

    def _term_hits(self, text: str, start: int) -> set[str]:
        if not self._words:
            return set()
        found: set[str] = set()
        words = list(_WORD.finditer(text, start))
        for i, word in enumerate(words):
            for rest, category in self._words.get(word.group(), ()):
                if category not in found and _followed_by(text, words, i, rest):
                    found.add(category)
        return found


def _word_start(text: str, at: int) -> int:
    """``at``, moved back to the start of the word it falls in."""
    while at > 0 and _WORD.match(text, at - 1):
        at -= 1
    return at


def _words_back(text: str, at: int, count: int, floor: int) -> int:
    """The start of the word ``count`` words before the one at ``at``, across gaps of spaces
    only (a term's words are separated by nothing else), not before ``floor``."""
    start = at
    while start > floor and _WORD.match(text, start - 1):
        start -= 1
    for _ in range(count):
        gap = start
        while gap > floor and text[gap - 1].isspace():
            gap -= 1
        if gap in (start, floor) or not _WORD.match(text, gap - 1):
            break
        while gap > floor and _WORD.match(text, gap - 1):
            gap -= 1
        start = gap
    return start


def _longest_match(source: str) -> int | None:
    """How many characters ``source`` can match at most; None if it has no bound."""
    try:
        longest = re._parser.parse(source, re.IGNORECASE).getwidth()[1]  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a parser detail of this Python: assume no bound
        return None
    return int(longest) if longest < _NO_BOUND else None


def _followed_by(text: str, words: list[re.Match[str]], i: int, rest: tuple[str, ...]) -> bool:
    """Whether ``words[i]`` is followed by ``rest``, word after word, with only spaces
    between them."""
    if i + len(rest) >= len(words):
        return False
    for n, wanted in enumerate(rest, start=1):
        here, before = words[i + n], words[i + n - 1]
        if here.group() != wanted or not text[before.end():here.start()].isspace():
            return False
    return True


class StreamCheck:
    """Checks an answer while it grows, looking again only at its end.

    Each call normalises only the new text and looks back from it only as far as a match
    that reaches into it could start (:meth:`Matcher.check_added`: the longest term's words,
    the longest bounded pattern, ``window`` characters at most), so a match that straddles two
    updates is still found, and a whole answer costs about one pass. The word still being
    written is left for later (it may grow into another word: "ass" into "assert"):
    :attr:`checked` says how much of the text has been checked, which is what may be shown. A
    match longer than ``window`` is found only when the whole answer comes in
    (``whole=True``), which checks all of it once more if it is longer than that.
    """

    def __init__(self, matcher: Matcher, window: int = 256) -> None:
        self._matcher = matcher
        self._window = window
        self.checked = 0  # characters of the raw text checked so far
        self._text = ""  # their normalised form

    def feed(self, text: str, *, whole: bool = False) -> Verdict:
        """Check what ``text``, the whole answer so far, adds to the last call's, up to the
        word being written (``whole``: all of it, when the answer is complete)."""
        end = len(text) if whole else _settled(text)
        if end < self.checked:  # not a continuation: start again
            self.checked, self._text = 0, ""
        verdict = CLEAN
        if end > self.checked:
            added = len(self._text)
            self._text += normalise(text[self.checked:end])
            self.checked = end
            verdict = self._matcher.check_added(self._text, added, self._window)
        if whole and not verdict.flagged and len(self._text) > self._window:
            verdict = self._matcher.check_normalised(self._text)
        return verdict


def _settled(text: str) -> int:
    """Where the last word of ``text`` starts (its length if it ends between words)."""
    end = len(text)
    while end > 0 and (text[end - 1].isalnum() or text[end - 1] == "_"):
        end -= 1
    return end


@dataclass
class Policy:
    rules: tuple[Rule, ...] = ()
    scopes: Mapping[str, Layer] = field(default_factory=dict)
    source: str = "empty"  # where it came from, for logs
    _cache: dict[tuple[tuple[str, ...], str | None], Matcher] = field(
        default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def has_collection_scopes(self) -> bool:
        return any(key.startswith(COLLECTION_PREFIX) for key in self.scopes)

    def matcher(self, scopes: Sequence[str] = (), stage: Stage | None = None) -> Matcher:
        """The rules in force for ``scopes`` (principals most specific first, as
        ``Inbound.principals`` lists them, and ``collection:NAME`` keys in any order) at
        ``stage`` (None: both stages, as ``/v1/moderations`` checks)."""
        known = tuple(s for s in scopes if s in self.scopes)
        key = (known, stage)
        found = self._cache.get(key)
        if found is None:
            found = Matcher(r for r in self._rules_for(known)
                            if stage is None or stage in r.stages)
            with self._lock:
                found = self._cache.setdefault(key, found)
        return found

    def check(self, text: str, stage: Stage | None = None, scopes: Sequence[str] = ()
              ) -> Verdict:
        return self.matcher(scopes, stage).check(text)

    def _rules_for(self, known: tuple[str, ...]) -> list[Rule]:
        collections = sorted(s for s in known if s.startswith(COLLECTION_PREFIX))
        principals = [s for s in reversed(known) if not s.startswith(COLLECTION_PREFIX)]
        rules = list(self.rules)
        for key in [*collections, *principals]:
            layer = self.scopes[key]
            rules = [r for r in rules if r.category not in layer.disable]
            rules += layer.rules
        return rules


def _term_expression(term: str) -> str:
    words = normalise(term).split()
    return r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)"


# Reading the file.

def load_policy(path: str | Path | None) -> Policy:
    """The policy in ``path``; None: the bundled example policy."""
    if path is None:
        text = resources.files("shared").joinpath(BUNDLED).read_text(encoding="utf-8")
        return parse_policy(text, source=f"bundled {BUNDLED}")
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the moderation policy {file}: {exc.strerror}") from None
    return parse_policy(text, source=str(file))


def parse_policy(text: str, *, source: str = "text") -> Policy:
    """A policy from TOML text; :class:`ConfigError` names the rule or field that is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"moderation policy {source}: {exc}") from None
    unknown = set(data) - {"rules", "scope"}
    if unknown:
        raise ConfigError(f"moderation policy {source}: unknown keys {sorted(unknown)}")
    rules = _rules(data.get("rules", []), f"{source}: rules")
    raw_scopes = data.get("scope", {})
    if not isinstance(raw_scopes, dict):
        raise ConfigError(f"moderation policy {source}: 'scope' must be a table of tables")
    scopes = {str(key): _layer(value, f"{source}: scope {key!r}")
              for key, value in raw_scopes.items()}
    return Policy(rules=rules, scopes=scopes, source=source)


def _layer(value: Any, where: str) -> Layer:
    if not isinstance(value, dict):
        raise ConfigError(f"moderation policy {where} must be a table")
    unknown = set(value) - {"rules", "disable"}
    if unknown:
        raise ConfigError(f"moderation policy {where}: unknown keys {sorted(unknown)}")
    return Layer(rules=_rules(value.get("rules", []), f"{where} rules"),
                 disable=frozenset(_strings(value.get("disable", []), f"{where} disable")))


def _rules(value: Any, where: str) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"moderation policy {where} must be an array of tables ([[rules]])")
    return tuple(_rule(item, f"{where}[{i}]") for i, item in enumerate(value))


def _rule(item: Any, where: str) -> Rule:
    if not isinstance(item, dict):
        raise ConfigError(f"moderation policy {where} must be a table")
    unknown = set(item) - {"category", "terms", "patterns", "applies_to"}
    if unknown:
        raise ConfigError(f"moderation policy {where}: unknown keys {sorted(unknown)}")
    category = item.get("category")
    if not isinstance(category, str) or not category.strip():
        raise ConfigError(f"moderation policy {where}: 'category' must be a non-empty string")
    terms = tuple(t for t in _strings(item.get("terms", []), f"{where} terms")
                  if normalise(t).split())
    # Accents dropped as in the text (regex syntax is ASCII, which this leaves alone).
    patterns = tuple(_MARKS.sub("", unicodedata.normalize("NFKD", p))
                     for p in _strings(item.get("patterns", []), f"{where} patterns"))
    if not terms and not patterns:
        raise ConfigError(f"moderation policy {where}: give 'terms' or 'patterns'")
    stages = frozenset(_strings(item.get("applies_to", list(STAGES)), f"{where} applies_to"))
    if not stages or not stages <= set(STAGES):
        raise ConfigError(f"moderation policy {where}: 'applies_to' takes 'input', 'output'")
    for n, pattern in enumerate(patterns):
        if _BACKREFERENCE.search(pattern):
            raise ConfigError(f"moderation policy {where} patterns[{n}]: backreferences are "
                              "not supported (patterns are combined into one expression)")
    rule = Rule(category.strip(), terms, patterns, stages)
    try:
        re.compile(f"(?:{rule.expression()})", re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"moderation policy {where}: bad pattern ({exc})") from None
    return rule


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"moderation policy {where} must be a list of strings")
    return list(value)
