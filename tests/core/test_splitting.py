"""Splitting long replies: limits, preferred cut points, code fences, UTF-16 lengths."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest
import regex

from bot.splitting import settled, split_message, truncate, utf16_len

FENCE_LINE = re.compile(r"^[ \t]*(```+|~~~+)\S*[ \t]*$", re.MULTILINE)
LATIN_WORDS = ["hello", "world", "quick", "the", "x=1;", "a" * 40]
WIDE_WORDS = ["你好", "世界", "中文测试句子", "😀", "👍🏽", "𝔘𝔫𝔦"]  # CJK, emoji, astral letters
WORDS = LATIN_WORDS + WIDE_WORDS
LANGUAGES = ["", "python", "js"]
RANDOM_CASES = 500
RANDOM_LIMITS = (32, 400)
MEASURE_CALLS_CAP = 100_000


class RunawaySplitError(Exception):
    """A split that keeps measuring long after any sane one would have stopped."""


def bounded(measure: Callable[[str], int]) -> Callable[[str], int]:
    """`measure`, but raising instead of letting a non-terminating split hang the suite."""
    calls = 0

    def counted(text: str) -> int:
        nonlocal calls
        calls += 1
        if calls > MEASURE_CALLS_CAP:
            raise RunawaySplitError
        return measure(text)

    return counted


def fence_lines(part: str) -> list[str]:
    return [match.group(0).strip() for match in FENCE_LINE.finditer(part)]


def without_fences_and_space(text: str) -> str:
    return "".join(FENCE_LINE.sub("", text).split())


def random_text(rng: random.Random) -> str:
    blocks = []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.3:
            lines = [" ".join(rng.choices(WORDS, k=rng.randint(1, 8))) for _ in range(rng.randint(1, 12))]
            blocks.append(f"```{rng.choice(LANGUAGES)}\n" + "\n".join(lines) + "\n```")
        else:
            lines = [" ".join(rng.choices(WORDS, k=rng.randint(1, 30))) for _ in range(rng.randint(1, 4))]
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def random_cases() -> list[tuple[str, int, Callable[[str], int]]]:
    rng = random.Random(20261122)
    return [
        (random_text(rng), rng.randint(*RANDOM_LIMITS), rng.choice([len, utf16_len]))
        for _ in range(RANDOM_CASES)
    ]


CASES = random_cases()


def test_utf16_len_counts_astral_characters_as_two_units() -> None:
    assert utf16_len("a中😀") == 4


def test_text_under_the_limit_is_one_part_unchanged() -> None:
    text = "Hello!\n\n```python\nprint('hi')\n```\n\n你好 😀  \n"
    assert split_message(text, 100) == [text]


def test_text_exactly_at_the_limit_is_one_part() -> None:
    assert split_message("a" * 50, 50) == ["a" * 50]


def test_limit_below_32_raises_value_error() -> None:
    with pytest.raises(ValueError):
        split_message("hello", 31)


def test_limit_of_32_is_accepted() -> None:
    assert split_message("hello", 32) == ["hello"]


def test_random_parts_stay_within_the_limit() -> None:
    for text, limit, measure in CASES:
        parts = split_message(text, limit, bounded(measure))
        assert all(measure(part) <= limit for part in parts), (text, limit, measure)


def test_random_parts_have_balanced_fences() -> None:
    for text, limit, measure in CASES:
        parts = split_message(text, limit, bounded(measure))
        assert all(len(fence_lines(part)) % 2 == 0 for part in parts), (text, limit, measure)


def test_random_parts_keep_all_the_text() -> None:
    for text, limit, measure in CASES:
        parts = split_message(text, limit, bounded(measure))
        joined = "\n".join(parts)
        assert without_fences_and_space(joined) == without_fences_and_space(text), (text, limit)


def test_random_parts_are_never_blank() -> None:
    for text, limit, measure in CASES:
        parts = split_message(text, limit, bounded(measure))
        assert all(part.strip() for part in parts), (text, limit)


def test_chinese_without_spaces_is_cut_hard_and_loses_nothing() -> None:
    text = "这是一个没有空格的很长的中文句子" * 10
    parts = split_message(text, 40)
    assert all(len(part) <= 40 for part in parts)
    assert "".join(parts) == text


def test_emoji_parts_fit_in_utf16_units() -> None:
    text = "😀" * 100
    parts = split_message(text, 33, utf16_len)
    assert all(utf16_len(part) <= 33 for part in parts)
    assert "".join(parts) == text


def test_emoji_parts_are_whole_characters() -> None:
    parts = split_message("ab😀" * 60, 41, utf16_len)
    for part in parts:
        part.encode("utf-8")  # a lone surrogate half would raise UnicodeEncodeError
    assert "".join(parts) == "ab😀" * 60


def test_cut_prefers_a_paragraph_break() -> None:
    first = "First paragraph with a few words.\nIt has a second line too."
    second = "Second paragraph is here, with more words to push past the limit."
    parts = split_message(f"{first}\n\n{second}", 100)
    assert parts[0] == first


def test_cut_prefers_a_line_break_over_a_space() -> None:
    first = "The first line has several words in it and then"
    second = "the second line carries on with more words past the limit"
    parts = split_message(f"{first}\n{second}", 80)
    assert parts[0] == first


def test_cut_falls_between_words() -> None:
    words = [f"word{i}" for i in range(100)]
    parts = split_message(" ".join(words), 60)
    assert [word for part in parts for word in part.split()] == words


def test_long_code_block_parts_each_open_and_close_the_fence() -> None:
    code = "\n".join(f"print({i})" for i in range(60))
    parts = split_message(f"```python\n{code}\n```", 100)
    assert len(parts) > 1
    assert all(part.startswith("```python\n") and part.endswith("\n```") for part in parts)


def test_long_code_block_keeps_every_code_line() -> None:
    lines = [f"print({i})" for i in range(60)]
    parts = split_message("```python\n" + "\n".join(lines) + "\n```", 100)
    kept = [line for part in parts for line in part.splitlines() if not FENCE_LINE.match(line)]
    assert kept == lines


def test_code_block_between_prose_reopens_with_its_language() -> None:
    code = "\n".join(f"    total += {i}" for i in range(40))
    text = f"Here is the code:\n\n```python\ndef f():\n{code}\n```\n\nThat is all."
    parts = split_message(text, 120)
    continuations = [part for part in parts[1:] if "total +=" in part]
    assert continuations
    assert all(part.startswith("```python\n") for part in continuations)


def test_every_part_of_a_mixed_reply_has_balanced_fences() -> None:
    code = "\n".join(f"let x{i} = {i};" for i in range(30))
    text = ("Intro words. " * 10) + f"\n\n```js\n{code}\n```\n\n" + ("Outro words. " * 10)
    parts = split_message(text, 90)
    assert all(len(fence_lines(part)) % 2 == 0 for part in parts)


def test_long_language_tag_with_small_limit_terminates() -> None:
    text = "```javascript\n" + "a" * 200 + "\n```"
    parts = split_message(text, 40, bounded(len))
    assert all(len(part) <= 40 for part in parts)


def test_four_backtick_fence_parts_stay_within_the_limit() -> None:
    text = "````\n" + "a" * 200 + "\n````"
    parts = split_message(text, 40)
    assert all(len(part) <= 40 for part in parts)


# --- grapheme clusters: a cut never falls inside one ---------------------------------------

GRAPHEME = regex.compile(r"\X")
CLUSTERS = {
    "zwj family": "👨\u200d👩\u200d👧\u200d👦",
    "flag": "🇨🇳",
    "skin tone": "👍🏽",
    "combining accent": "e\u0301",
    "rainbow flag": "🏳️\u200d🌈",
}


@pytest.mark.parametrize("name", list(CLUSTERS))
@pytest.mark.parametrize("measure", [len, utf16_len], ids=["discord", "telegram"])
def test_a_cut_never_splits_a_cluster(name: str, measure: Callable[[str], int]) -> None:
    for offset in range(8):  # every alignment of the clusters against the limit
        text = "x" * offset + CLUSTERS[name] * 300
        parts = split_message(text, 100, measure)
        assert "".join(parts) == text
        assert all(GRAPHEME.findall(p) == [CLUSTERS[name]] * (len(p) // len(CLUSTERS[name]))
                   for p in parts[1:])


def test_a_flag_cut_in_half_does_not_re_pair_the_later_flags() -> None:
    text = "x" + "🇨🇳" * 200  # an odd offset: a cut by code points falls between 🇨 and 🇳

    parts = split_message(text, 101)

    assert not any("🇳🇨" in GRAPHEME.findall(p) for p in parts)


def test_one_cluster_longer_than_the_limit_is_still_cut() -> None:
    zalgo = "z" + "\u0301" * 200

    parts = split_message(zalgo, 64)

    assert "".join(parts) == zalgo and all(len(p) <= 64 for p in parts)


def test_settled_holds_back_a_last_cluster_that_may_still_grow() -> None:
    assert settled("flag 🇨") == "flag "  # half a flag
    assert settled("fam 👨\u200d👩") == "fam "  # a family still arriving
    assert settled("ok 👍") == "ok "  # a skin tone may follow
    assert settled("flag 🇨🇳") == "flag 🇨🇳"  # a whole flag cannot grow
    assert settled("👨\u200d👩\u200d") == "👨\u200d👩\u200d"  # one cluster so far: shown whole


def test_settled_shows_letters_at_once() -> None:
    assert settled("Hello") == "Hello"  # never "Hell": the gate would judge a word that is not there
    assert settled("cafe") == "cafe"


def test_truncate_keeps_whole_clusters() -> None:
    assert truncate("ab" + "🇨🇳" * 5, 5) == "ab🇨🇳"
    assert truncate("👍🏽👍🏽", 3, utf16_len) == ""
    assert truncate("short", 100) == "short"


CLUSTER_ATOMS = ["a", " ", "\n", "\r\n", "中", "\u0301", "\u200d", "👍", "🏽", "🇨", "🇳", "👩", "👧",
                 "1", "\ufe0f", "\u20e3", "ก", "\u0e33", "각", "\u1100", "\u1161", "क", "\u094d", "ष"]


def whole_scan_floor(text: str, index: int) -> int:
    """The last cluster boundary at or before `index`, clusters found from the text's start."""
    edge = 0
    for match in regex.finditer(r"\X", text):
        if match.end() > index:
            break
        edge = match.end()
    return edge


def test_cuts_found_near_the_cut_are_those_found_from_the_start() -> None:
    """Clusters are found from a sure boundary near the cut (a streamed reply is cut at
    every edit); joiners, modifiers, flags, Hangul jamo and conjuncts around it must
    give the cuts a scan from the start gives."""
    rng = random.Random(7)
    for _ in range(400):
        text = "".join(rng.choice(CLUSTER_ATOMS) for _ in range(rng.randint(1, 900)))
        for index in (rng.randint(1, len(text)) for _ in range(5)):
            cut = len(truncate(text, index))
            assert cut == whole_scan_floor(text, index), (text, index)
        last = [m.start() for m in regex.finditer(r"\X", text)][-1]
        assert settled(text) in (text, text[:last])
