"""Layer 2: word lists matched with one Aho-Corasick automaton per list.

Latin-script entries match on word boundaries (a few inflection suffixes
allowed for longer ones: "fucking", "bitches"); Chinese entries match as
substrings. An allowlist hides blocked matches that lie wholly inside a
harmless word ("Scunthorpe", "逼真"). Every entry carries an OpenAI moderation
category. The shipped lists live in `bot/moderation/data/` (see ATTRIBUTION.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

import ahocorasick

from bot.moderation.invisible import strip_invisible
from bot.moderation.normalise import Views, has_cjk, normalise

Action = Literal["block", "allow"]
DATA_PACKAGE = "bot.moderation"
UPSTREAM = ("upstream/glin_english.txt", "upstream/glin_chinese.txt")
OWN_LISTS = ("block_en.tsv", "block_zh.tsv")
UPSTREAM_DEFAULT_CATEGORY = "sexual"  # the upstream lists are mostly sexual terms
# Endings a Latin entry of MIN_SUFFIXED letters or more may carry: "fucking", "bitches".
SUFFIXES = ("ings", "ing", "ers", "er", "es", "ed", "s", "y", "ies", "in")
MIN_SUFFIXED = 4
# Letters of obscenities someone masks with "*": "f*ck", "sh*t", "c**t".
MASKABLE_CATEGORIES = frozenset({"harassment", "hate", "sexual"})
MASK_LENGTHS = range(4, 9)
VOWELS = frozenset("aeiou")
# An abbreviation used as a definition marker: "do sth for sb" is English grammar, not abuse.
GRAMMAR_MARKERS = re.compile(r"(?<![a-z])sth(?![a-z])")


@dataclass(frozen=True, slots=True)
class Entry:
    """One list entry, already normalised."""

    text: str
    category: str
    action: Action = "block"
    flags: frozenset[str] = frozenset()
    admin: bool = False

    @property
    def latin_start(self) -> bool:
        return _is_word_char(self.text[0])

    @property
    def latin_end(self) -> bool:
        return _is_word_char(self.text[-1])

    @property
    def suffixable(self) -> bool:
        return self.text.isascii() and self.text.isalpha() and len(self.text) >= MIN_SUFFIXED


@dataclass(frozen=True, slots=True)
class Hit:
    """An entry found in one view of a text, at [start, end)."""

    entry: Entry
    start: int
    end: int

    def inside(self, other: Hit) -> bool:
        return other.start <= self.start and self.end <= other.end


@dataclass(frozen=True, slots=True)
class ListMatch:
    """The outcome of matching the lists: the blocking entries found, and the spans of
    the main view that allowed (harmless) words cover."""

    blocked: tuple[Entry, ...] = ()
    allowed_spans: tuple[tuple[int, int], ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.blocked)

    @property
    def by_admin(self) -> bool:
        return any(e.admin for e in self.blocked)

    def without_allowed(self, main: str) -> str:
        """The main view with allowed words blanked out (what the classifier should read)."""
        if not self.allowed_spans:
            return main
        chars = list(main)
        for start, end in self.allowed_spans:
            chars[start:end] = " " * (end - start)
        return "".join(chars)


def _is_word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


class Matcher:
    """One automaton over a set of entries; finds boundary-respecting hits."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._entries: list[Entry] = []
        self._automaton = ahocorasick.Automaton()
        seen: set[tuple[str, str]] = set()
        for entry in entries:
            if entry.text and (entry.text, entry.action) not in seen:
                seen.add((entry.text, entry.action))
                self._automaton.add_word(entry.text, len(self._entries))
                self._entries.append(entry)
        if self._entries:
            self._automaton.make_automaton()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    def hits(self, view: str) -> Iterator[Hit]:
        if not self._entries:
            return
        for last, index in self._automaton.iter(view):
            entry = self._entries[index]
            hit = _bounded(entry, view, last + 1 - len(entry.text), last + 1)
            if hit is not None:
                yield hit


def _bounded(entry: Entry, view: str, start: int, end: int) -> Hit | None:
    """The hit if it respects word boundaries at its Latin ends, else None."""
    if entry.latin_start and start > 0 and _is_word_char(view[start - 1]):
        return None
    if not entry.latin_end or end == len(view) or not _is_word_char(view[end]):
        return Hit(entry, start, end)
    if entry.suffixable:
        for suffix in SUFFIXES:
            stop = end + len(suffix)
            if view.startswith(suffix, end) and (stop == len(view) or not _is_word_char(view[stop])):
                return Hit(entry, start, stop)
    return None


@dataclass(frozen=True)
class WordLists:
    """The built-in lists plus, per scope, an admin's words."""

    builtin: Matcher
    admin: Matcher = field(default_factory=lambda: Matcher(()))

    def with_admin(self, entries: Iterable[Entry]) -> WordLists:
        return WordLists(self.builtin, Matcher(entries))


    def match(self, views: Views, original: str) -> ListMatch:
        blocked: list[Entry] = []
        spans: tuple[tuple[int, int], ...] = ()
        for view in views.all():
            found, allowed = self._match_view(view, original)
            blocked.extend(found)
            if view is views.main:
                spans = tuple((h.start, h.end) for h in allowed)
        return ListMatch(tuple(dict.fromkeys(blocked)), spans)

    def _match_view(self, view: str, original: str) -> tuple[list[Entry], list[Hit]]:
        hits = [*self.builtin.hits(view), *self.admin.hits(view)]
        allowed = [h for h in hits if h.entry.action == "allow"]
        blocked = [
            h.entry for h in hits
            if h.entry.action == "block"
            and not any(h.inside(a) and (a.entry.admin or not h.entry.admin) for a in allowed)
            and _abbreviation_applies(h.entry, view, original)
        ]
        return blocked, allowed


def _abbreviation_applies(entry: Entry, view: str, original: str) -> bool:
    """Pinyin initials that are also acronyms ("SB 1047", "TMD", "sb/sth") count only
    in Chinese text, or when not written as a capitalised acronym, and never beside "sth"."""
    if "abbr" not in entry.flags:
        return True
    if GRAMMAR_MARKERS.search(view):
        return False
    if has_cjk(original):
        return True
    acronym = re.compile(rf"(?<![A-Za-z]){re.escape(entry.text.upper())}(?![A-Za-z])")
    return acronym.search(strip_invisible(original)) is None


# --- loading the shipped lists -------------------------------------------------


def _data(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath("data", name).read_text("utf-8")


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line.rstrip("\n")


def _table(text: str) -> Iterator[list[str]]:
    for line in _lines(text):
        yield [part.strip() for part in line.split("\t")]


def make_entry(word: str, category: str, action: Action = "block", flags: Iterable[str] = (),
               *, admin: bool = False) -> Entry:
    return Entry(normalise(word), category, action, frozenset(flags), admin)


def masked_variants(entry: Entry) -> Iterator[Entry]:
    """`fuck` → `f*ck`, `f**k`: how people half-hide an obscenity."""
    word = entry.text
    if entry.category not in MASKABLE_CATEGORIES or not word.isalpha() or len(word) not in MASK_LENGTHS:
        return
    for i in range(1, len(word) - 1):
        if word[i] in VOWELS:
            yield Entry(word[:i] + "*" + word[i + 1:], entry.category, flags=entry.flags)
    yield Entry(word[0] + "*" * (len(word) - 2) + word[-1], entry.category, flags=entry.flags)


def builtin_entries() -> list[Entry]:
    """Every shipped entry: upstream lists (minus exclusions), Hearth's lists, the allowlist."""
    excluded = {line.strip() for line in _lines(_data("upstream_exclude.txt"))}
    categories = {row[0]: row[1] for row in _table(_data("upstream_categories.tsv"))}
    entries: list[Entry] = []
    for name in UPSTREAM:
        for word in _lines(_data(name)):
            if word not in excluded:
                entries.append(make_entry(word, categories.get(word, UPSTREAM_DEFAULT_CATEGORY)))
    for name in OWN_LISTS:
        for row in _table(_data(name)):
            entries.append(make_entry(row[0], row[1], flags=row[2].split(",") if len(row) > 2 else ()))
    entries += [v for e in list(entries) for v in masked_variants(e)]
    entries += [make_entry(word, "none", "allow") for word in _lines(_data("allow.txt"))]
    return entries


@lru_cache(maxsize=1)
def load_word_lists() -> WordLists:
    """The shipped lists, ready to match. Read once per process (the data never changes);
    the first call takes a while: make it off the event loop."""
    return WordLists(Matcher(builtin_entries()))
