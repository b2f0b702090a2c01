"""Tests of the moderation gate, layer by layer and through the pipeline."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

from bot.messages import ConversationKey
from bot.moderation.normalise import views
from bot.moderation.wordlists import ListMatch, load_word_lists

ROOM = ConversationKey("telegram", "room")


def listed(text: str) -> ListMatch:
    """The shipped word lists' finding for `text` (layers 1 and 2 only)."""
    return load_word_lists().match(views(text), text)


def categories_of(text: str) -> set[str]:
    return {e.category for e in listed(text).blocked}


# Every code point a reader cannot see, from the Unicode properties (the `regex`
# package's data) and, independently, from the interpreter's own category table.
INVISIBLE_PROPERTIES = (
    r"[\p{Default_Ignorable_Code_Point}\p{Cf}\p{Variation_Selector}\p{Block=Tags}"
    r"[\p{Cc}--\p{White_Space}]]"
)


@lru_cache(maxsize=1)
def every_code_point() -> str:
    """Every code point but the surrogates, in one string."""
    return "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


@lru_cache(maxsize=1)
def invisible_code_points() -> tuple[str, ...]:
    everything = every_code_point()
    by_property = set(regex.findall(INVISIBLE_PROPERTIES, everything, flags=regex.V1))
    by_category = {c for c in everything if unicodedata.category(c) == "Cf"}
    return tuple(sorted(by_property | by_category))
