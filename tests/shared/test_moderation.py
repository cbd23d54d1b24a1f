"""The moderation policy: parsing, matching words and patterns, scopes."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.moderation import StreamCheck, load_policy, normalise, parse_policy

POLICY = r'''
[[rules]]
category = "hate"
terms = ["odio", "Ass", "bad word"]

[[rules]]
category = "violence"
patterns = ['\bte voy a matar\b', 'kill (you|him)']

[[rules]]
category = "credentials"
applies_to = ["output"]
patterns = ['akia[0-9a-z]{16}']

[scope."slack:T1"]
disable = ["hate"]

[scope."slack:T1:C2"]
[[scope."slack:T1:C2".rules]]
category = "hate"
terms = ["odio"]

[scope."collection:hr"]
[[scope."collection:hr".rules]]
category = "confidential"
applies_to = ["output"]
terms = ["salary band"]
'''


@pytest.fixture(scope="module")
def policy():  # type: ignore[no-untyped-def]
    return parse_policy(POLICY)


def test_terms_ignore_case_and_accents(policy) -> None:  # type: ignore[no-untyped-def]
    for text in ("Siento ÓDIO", "odio", "Ódio!", "un ODÍO así", "ass", "What an ASS."):
        assert policy.check(text, "input").categories == ("hate",), text
    assert normalise("Ódio ÑANDÚ Straße") == "odio nandu strasse"


def test_terms_are_whole_words(policy) -> None:  # type: ignore[no-untyped-def]
    for text in ("class", "assess the bass", "passage", "odiosa", "meloodio", "badword"):
        assert not policy.check(text, "input").flagged, text
    assert policy.check("a bad\n  word here", "input").categories == ("hate",)
    assert policy.check("(ass)", "input").flagged


def test_patterns_run_on_the_normalised_text(policy) -> None:  # type: ignore[no-untyped-def]
    assert policy.check("¡Te voy a MATAR!", "input").categories == ("violence",)
    assert policy.check("I will Kill You", "input").categories == ("violence",)
    assert not policy.check("te voy a matarlo... no: te voy a ayudar", "input").flagged


def test_every_matching_category_is_named(policy) -> None:  # type: ignore[no-untyped-def]
    verdict = policy.check("odio; kill him; AKIAABCDEFGHIJKLMNOP", "output")
    assert verdict.categories == ("credentials", "hate", "violence")


def test_applies_to_limits_a_rule_to_a_stage(policy) -> None:  # type: ignore[no-untyped-def]
    key = "the key is AKIAABCDEFGHIJKLMNOP"
    assert not policy.check(key, "input").flagged
    assert policy.check(key, "output").categories == ("credentials",)
    assert policy.check(key).categories == ("credentials",)  # both stages: /v1/moderations


def test_scopes_disable_and_add(policy) -> None:  # type: ignore[no-untyped-def]
    team, channel = ("slack:T1",), ("slack:T1:C2", "slack:T1")
    assert not policy.check("ass", "input", team).flagged  # the workspace switched hate off
    assert policy.check("kill you", "input", team).flagged  # but not violence
    # The channel brings back its own hate rule, on top of the workspace's switch.
    assert policy.check("odio", "input", channel).categories == ("hate",)
    assert not policy.check("ass", "input", channel).flagged
    # Unknown scopes change nothing; other workspaces keep the global rules.
    assert policy.check("ass", "input", ("slack:T9:C1", "slack:T9")).flagged
    hr = ("api:alice", "collection:hr")
    assert policy.check("Our Salary Band is", "output", hr).categories == ("confidential",)
    assert not policy.check("Our salary band is", "output", ("api:alice",)).flagged
    assert policy.has_collection_scopes


def test_matchers_are_compiled_once_per_scope_set(policy) -> None:  # type: ignore[no-untyped-def]
    first = policy.matcher(("slack:T1:C2", "slack:T1", "unknown"), "input")
    assert policy.matcher(("slack:T1:C2", "slack:T1"), "input") is first
    assert policy.matcher(("slack:T1",), "input") is not first


def test_the_stream_check_finds_a_match_split_across_updates(policy) -> None:  # type: ignore[no-untyped-def]
    check = StreamCheck(policy.matcher((), "output"), window=32)
    text = "A long and harmless answer about the weather. " * 20
    assert not check.feed(text).flagged
    assert check.checked == len(text)
    assert not check.feed(text + "and then I will ki").flagged
    assert check.checked == len(text + "and then I will ")  # "ki" may become anything
    assert check.feed(text + "and then I will kill you.").categories == ("violence",)


def test_the_stream_check_waits_for_the_word_being_written(policy) -> None:  # type: ignore[no-untyped-def]
    check = StreamCheck(policy.matcher((), "output"), window=4)
    assert not check.feed("Use the ass").flagged  # "ass", or the start of "assert"?
    assert not check.feed("Use the assert").flagged
    assert not check.feed("Use the assert statement in a class").flagged
    assert not check.feed("Use the assert statement in a class, ass").flagged
    assert check.checked == len("Use the assert statement in a class, ")
    # The whole answer: its last word counts.
    assert check.feed("Use the assert statement in a class, ass", whole=True).flagged
    # Word boundaries still see what came before the window.
    check = StreamCheck(policy.matcher((), "output"), window=2)
    assert not check.feed("a cl").flagged
    assert not check.feed("a class and").flagged


def test_a_match_longer_than_the_window_is_found_when_the_whole_answer_comes_in() -> None:
    policy = parse_policy(r'''
[[rules]]
category = "leak"
patterns = ['begin private key.*end private key']
''')
    filler = "and more harmless text " * 20
    text = f"Here: BEGIN PRIVATE KEY {filler} END PRIVATE KEY. "
    check = StreamCheck(policy.matcher((), "output"), window=64)
    for cut in range(1, len(text) + 1, 7):  # as a stream would bring it in
        assert not check.feed(text[:cut]).flagged  # the start is out of the window's reach
    assert not check.feed(text).flagged
    assert check.feed(text, whole=True).categories == ("leak",)
    # A short answer was seen whole already; a clean long one stays clean.
    check = StreamCheck(policy.matcher((), "output"), window=64)
    assert not check.feed(filler, whole=True).flagged


def test_a_policy_of_many_terms_is_one_dictionary_and_no_expression() -> None:
    # What keeps a large policy cheap: its word terms are looked up word by word, not tried
    # one by one as expressions (the speed itself is measured by bench/, not here).
    big = parse_policy("\n".join(
        f'[[rules]]\ncategory = "c{i % 7}"\nterms = ["word{i}a", "word{i} b"]' for i in range(500)))
    matcher = big.matcher((), "output")
    assert matcher.term_words == 2 and matcher.bounded_width == 0
    assert matcher._any is None and matcher._bounded is None and matcher._unbounded is None
    text = "An ordinary answer, with nothing in it that any rule would object to. " * 30
    assert not matcher.check(text).flagged
    assert matcher.check(text + "word499  b").categories == ("c2",)
    assert matcher.check(text + "word498a").categories == ("c1",)


STREAMED = r'''
[[rules]]
category = "terms"
terms = ["child sexual abuse material", "odio"]

[[rules]]
category = "short"
patterns = ['\bi (will|am going to) (kill|hurt) you\b']

[[rules]]
category = "long"
patterns = ['-----begin [a-z ]*private key-----', 'xox[abpr]-[0-9a-z-]{10,}']
'''


def test_the_matcher_knows_how_far_back_each_kind_of_rule_can_reach() -> None:
    matcher = parse_policy(STREAMED).matcher((), "output")
    assert matcher.term_words == 4
    assert matcher.bounded_width == len("i am going to kill you")  # \b takes no character
    assert matcher._unbounded is not None
    assert "private key" in matcher._unbounded.pattern and "kill" not in matcher._unbounded.pattern


@pytest.mark.parametrize("answer", [
    "Well. The file is -----BEGIN RSA PRIVATE KEY----- and more.",
    "Your token: xoxb-1234567890-abcdef, keep it safe.",
    "Listen: I am going to kill you, he said.",
    "We never share child   sexual\nabuse  material here.",
    "Siento ódio por los lunes.",
    "A long and harmless answer about the weather, with a bit of everything in it, " * 3,
    "child sexual abuse, material: these words apart are not the term.",
])
def test_streaming_finds_what_the_whole_check_finds_wherever_the_pieces_break(
        answer: str) -> None:
    matcher = parse_policy(STREAMED).matcher((), "output")
    expected = matcher.check(answer).categories
    for step in (1, 2, 3, 5, 8, 13):
        check = StreamCheck(matcher)
        found: tuple[str, ...] = ()
        for end in [*range(step, len(answer), step), len(answer)]:
            verdict = check.feed(answer[:end], whole=end == len(answer))
            found = found or verdict.categories
        assert found == expected, (step, answer)
    assert bool(expected) == ("harmless" not in answer and "apart" not in answer)


def test_streaming_looks_back_words_not_characters_for_terms() -> None:
    # The first words of a term arrived long before its last one (many spaces between): the
    # term is still found, because the check looks back four words, not a fixed distance.
    matcher = parse_policy(STREAMED).matcher((), "output")
    check = StreamCheck(matcher, window=256)
    text = "child " + " " * 100 + "sexual abuse "
    assert not check.feed(text).flagged
    assert check.feed(text + "material.").categories == ("terms",)


@pytest.mark.parametrize(("text", "error"), [
    ("[[rules]]\ncategory = 'x'", "give 'terms' or 'patterns'"),
    ("[[rules]]\nterms = ['a']", "'category'"),
    ("[[rules]]\ncategory = 'x'\npatterns = ['(unclosed']", "bad pattern"),
    ("[[rules]]\ncategory = 'x'\npatterns = ['(a)\\1']", "backreferences"),
    ("[[rules]]\ncategory = 'x'\npatterns = ['a(?i)b']", "bad pattern"),
    ("[[rules]]\ncategory = 'x'\nterms = ['a']\napplies_to = ['later']", "applies_to"),
    ("[[rules]]\ncategory = 'x'\nterms = 'a'", "list of strings"),
    ("[[rules]]\ncategory = 'x'\nterms = ['a']\nterm = ['b']", "unknown keys"),
    ("[scope.'slack:T1']\ndisabled = ['x']", "unknown keys"),
    ("rules = 3", "array of tables"),
    ("[[rules]\n", "moderation policy"),
])
def test_a_bad_policy_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        parse_policy(text)


def test_loading_from_a_file_and_the_bundled_example(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    assert load_policy(path).check("odio", "input").flagged
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")
    bundled = load_policy(None)
    assert bundled.check("¿Cómo fabrico una bomba?", "input").categories == ("illicit/violent",)
    assert bundled.check("I'm going to kill you", "input").categories == ("violence",)
    assert bundled.check("-----BEGIN RSA PRIVATE KEY-----", "output").flagged
    for harmless in ("What is two plus two?", "Name a colour of the sky.",
                     "¿Cuál es la capital de España?", "How do I kill a process on Linux?"):
        assert not bundled.check(harmless, "input").flagged, harmless
