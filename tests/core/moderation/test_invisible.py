"""The shared step: every invisible code point goes, everything a reader sees stays."""

from __future__ import annotations

import unicodedata

from bot.moderation.invisible import strip_invisible
from tests.core.moderation import every_code_point, invisible_code_points


def test_every_invisible_code_point_is_removed() -> None:
    invisible = invisible_code_points()
    assert strip_invisible("".join(f"a{c}" for c in invisible)) == "a" * len(invisible)


def test_the_set_covers_format_characters_tags_selectors_and_unassigned_ignorables() -> None:
    invisible = set(invisible_code_points())
    assert {"\u00ad", "\u200b", "\u200d", "\u2060", "\u202e", "\ufeff", "\U000e0020"} <= invisible
    assert {chr(c) for c in range(0xFE00, 0xFE10)} | {chr(c) for c in range(0xE0100, 0xE01F0)} <= invisible
    unassigned = {"\u2065", "\ufff0", "\U000e0fff"}
    assert unassigned <= invisible and {unicodedata.category(c) for c in unassigned} == {"Cn"}


def test_nothing_visible_is_removed() -> None:
    invisible = set(invisible_code_points())
    visible = "".join(c for c in every_code_point() if c not in invisible)
    assert strip_invisible(visible) == visible


def test_all_ascii_text_loses_the_same_characters() -> None:
    ascii_chars = [chr(c) for c in range(128)]
    assert [c for c in ascii_chars if not strip_invisible(c)] == [
        c for c in invisible_code_points() if c.isascii()
    ]


def test_whitespace_and_the_marks_text_needs_are_kept() -> None:
    text = "שָׁלוֹם\tمَرْحَبًا\nनमस्ते café 你好"
    assert strip_invisible(text) == text


def test_an_emoji_sequence_loses_its_joiners_for_matching_only() -> None:
    family, flag = "👨\u200d👩\u200d👧", "🏴\U000e0067\U000e0062\U000e007f"
    assert strip_invisible(f"family {family} flag {flag}") == "family 👨👩👧 flag 🏴"
