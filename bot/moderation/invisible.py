"""The one step every moderation layer shares: characters nobody can see are removed.

A character a reader cannot see must not split a word for the gate either, so the
word lists, the classifier, the guard model and the leak check all read text through
`strip_invisible`. What goes is chosen by Unicode property, not by a hand list (the
`regex` package carries current Unicode data, newer than the interpreter's):

- every Default_Ignorable_Code_Point, assigned or not: zero-width spaces and joiners,
  the soft hyphen, variation selectors, tag characters, Hangul fillers, the combining
  grapheme joiner, and the reserved ranges kept for future ones;
- every format character (category Cf), bidi controls and Arabic number signs included;
- control characters (Cc) other than whitespace.

The joiner inside an emoji sequence goes too ("👨‍👩‍👧" reads as "👨👩👧"): the result is
only matched or shown to the guard model; the stored and displayed text is never altered.
"""

from __future__ import annotations

import re

import regex

IGNORABLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Cf}[\p{Cc}--\s]]", regex.V1)
# The same set within ASCII (only control characters), for the common all-ASCII message:
# the stdlib scans ASCII several times faster than `regex` scans any text.
ASCII_IGNORABLE = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(128) if IGNORABLE.match(chr(c))) + "]"
)


def strip_invisible(text: str) -> str:
    """`text` without its default-ignorable, format and (non-space) control characters."""
    if text.isascii():
        return ASCII_IGNORABLE.sub("", text)
    return str(IGNORABLE.sub("", text))
