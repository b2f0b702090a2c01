"""Splitting a long reply into messages that each fit a platform's limit.

Cuts prefer a paragraph break, then a line break, then a space; a cut inside a
fenced code block closes the fence and reopens it (same language) in the next
part. Lengths are measured by the platform's own rule (Telegram counts UTF-16
code units), and a cut never falls inside a character.
"""

from __future__ import annotations

import re
from collections.abc import Callable

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
    end = _fit(text, room, measure)
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
