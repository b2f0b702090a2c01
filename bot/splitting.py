"""Splitting a long reply into messages that each fit a platform's limit.

Cuts prefer a paragraph break, then a line break, then a space; a cut inside a
fenced code block closes the fence and reopens it (same language) in the next
part. Lengths are measured by the platform's own rule (Telegram counts UTF-16
code units), and a cut never falls inside a user-perceived character: only on
the extended grapheme cluster boundaries of UAX #29 (the `regex` module's `\\X`),
so a ZWJ family, a flag, a skin tone or `e` + U+0301 stays whole. A flag's two
regional indicators cut apart would re-pair every later flag of the message
(🇨🇳 shown as 🇳🇨). Only a single cluster longer than the limit is cut inside.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import regex

GRAPHEME = regex.compile(r"\X")
# What may still grow into a longer cluster: an emoji (a skin tone, VS16 or a ZWJ may
# follow), a modifier or VS16 (a ZWJ may follow), a ZWJ, a regional indicator.
GROWING = regex.compile(r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\u200d\ufe0f]$")
REGIONAL_PAIR = regex.compile(r"\p{Regional_Indicator}{2}")
# Positions that are a grapheme cluster boundary whatever surrounds them (UAX #29): after a
# line feed (GB4), and between two characters of break class Other (GB999: no rule joins
# them). Clusters are found from the last such position before a cut, not from the
# text's start: a streamed reply is cut and settled at every edit, and scanning it whole
# each time made splitting most of Hearth's per-token cost (1.5 ms per edit at 8,000
# characters).
ANCHOR = regex.compile(r"(?r)(?<=\n)|(?<=\p{GCB=Other})(?=\p{GCB=Other})")
ANCHOR_WINDOW = 256  # characters searched back for an anchor before scanning from the start
FENCE = re.compile(r"^(\s*)(```+|~~~+)(\S*)", re.MULTILINE)
BREAKS = ("\n\n", "\n", " ")

Measure = Callable[[str], int]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int, measure: Measure = len) -> list[str]:
    """Parts of `text`, each with `measure(part) <= limit`, code fences balanced."""
    if limit < 32:
        raise ValueError("limit too small to split into")
    parts: list[str] = []
    reopen = ""
    rest = text
    while rest:
        rest = reopen + rest
        if measure(rest) <= limit:
            parts.append(rest)
            break
        part, rest, reopen = _cut(rest, limit, measure, len(reopen))
        parts.append(part)
    return [p for p in parts if p.strip()] or [text[:1] or ""]


def _cut(text: str, limit: int, measure: Measure, start: int) -> tuple[str, str, str]:
    """One part, the rest, and the fence line that the rest must reopen.

    The cut falls after `start` (the reopened fence line), so every part makes progress.
    """
    room = limit - 1 - _longest_marker(text)  # space to close a fence if we cut inside one
    end = grapheme_floor(text, _fit(text, room, measure), start)
    cut = _best_break(text, end, start)
    head, tail = text[:cut], text[cut:].lstrip("\n")
    fence = _open_fence(head)
    if fence is None:
        return head.rstrip(), tail, ""
    return head.rstrip("\n") + "\n" + fence[0], tail, fence[1] + "\n"


def _fit(text: str, room: int, measure: Measure) -> int:
    """The largest prefix length (in characters) whose measure fits `room`."""
    low, high = 1, min(len(text), room)
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= room:
            low = mid
        else:
            high = mid - 1
    return low


def grapheme_floor(text: str, index: int, start: int = 0) -> int:
    """The last grapheme cluster boundary of `text` at or before `index` and after `start`;
    `index` itself when a single cluster spans all of (start, index] (it must be cut)."""
    if index >= len(text) or index <= 0:
        return index
    edge = anchor = _anchor(text, index)
    for match in GRAPHEME.finditer(text, anchor):  # a flag's halves pair up from a boundary
        if match.end() > index:
            break
        edge = match.end()
    return edge if edge > start else index


def _anchor(text: str, index: int) -> int:
    """A grapheme cluster boundary at or before `index`: the last `ANCHOR` within
    ANCHOR_WINDOW characters, else 0."""
    low = max(0, index - ANCHOR_WINDOW)
    found = ANCHOR.search(text, low, index + 1)  # the last one: ANCHOR searches backwards
    if found is not None and found.start() > index:  # just past a line feed at `index`
        found = ANCHOR.search(text, low, index)
    return 0 if found is None else found.start()


def _is_boundary(text: str, index: int) -> bool:
    anchor = _anchor(text, index)
    return index == anchor or any(m.end() == index for m in GRAPHEME.finditer(text, anchor, index + 1))


def settled(text: str) -> str:
    """`text` as a streamed edit may show it: without its last grapheme cluster when that
    is an emoji sequence or a flag that the next chunk may still extend (a skin tone, a
    ZWJ and the next person of a family, a flag's second half; shown half, a flag re-pairs
    every later one). A letter is shown at once: an accent that follows only changes it,
    and holding back every last letter would show words that are not there ("Hell" for
    "Hello") to readers and to the gate. The whole text once nothing is left before it."""
    if not text or not GROWING.search(text[-1]):
        return text
    last = 0
    for match in GRAPHEME.finditer(text, _anchor(text, len(text) - 1)):
        last = match.start()
    cluster = text[last:]
    growing = cluster[-1] != "\u20e3" and not REGIONAL_PAIR.fullmatch(cluster)  # a keycap, a flag: whole
    return text[:last] if last > 0 and growing else text


def truncate(text: str, limit: int, measure: Measure = len) -> str:
    """The longest prefix of whole grapheme clusters with `measure(prefix) <= limit`."""
    if measure(text) <= limit:
        return text
    end = _fit(text, limit, measure)
    cut = grapheme_floor(text, end)
    return text[: cut if cut < end or _is_boundary(text, end) else 0]


def _best_break(text: str, end: int, start: int) -> int:
    """Cut at the last paragraph, line or word break in the back two thirds."""
    for sep in BREAKS:
        at = text.rfind(sep, 0, end)
        if at > max(end // 3, start):
            return at + (len(sep) if sep == " " else 0)
    return end


def _longest_marker(text: str) -> int:
    return max((len(m.group(2)) for m in FENCE.finditer(text)), default=3)


def _open_fence(text: str) -> tuple[str, str] | None:
    """If `text` ends inside a fence: (closing marker, opening line) else None."""
    opened: tuple[str, str] | None = None
    for match in FENCE.finditer(text):
        marker = match.group(2)
        if opened is None:
            opened = (marker, match.group(0).strip())
        elif marker.startswith(opened[0][0]) and len(marker) >= len(opened[0]):
            opened = None
    return opened
