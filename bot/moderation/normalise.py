"""Layer 1: the one normal form every moderation layer reads, so evasions look like the word.

`canonical` is shared by every layer and direction (input, output, the leak check):
invisible characters dropped (`invisible.strip_invisible`), enclosing marks dropped
(keycaps: `1️⃣` → `1`), letters written as symbols read as letters (runs of three or
more regional indicators, `🇫🇺🇨🇰` → `fuck`, while a lone flag stays a flag; parenthesised
letters `⒡⒰⒞⒦`), NFKC (full-width → ASCII), case folded, then the TR39 skeleton of
every non-ASCII run (disarm's `skeleton_key`: small capitals `ꜰᴜᴄᴋ`, mathematical,
circled and squared letters, homoglyphs), accents stripped, Cyrillic/Greek look-alikes
folded, and traditional Chinese converted to simplified (OpenCC `t2s`: `幹你娘` reads as
`干你娘`). ASCII is left to the steps below: TR39 would read `|` as `l` and `"` as `''`.

The word lists then match views of it: leetspeak inside Latin words, letters spaced out
by any run of separators, punctuation, symbols or emoji (`f,u,c,k`, `f🙂u🙂c🙂k`, `傻🙂逼`)
joined, runs of a repeated letter shortened, and, when the text holds markup characters,
a view without them (Discord spoilers `fu||ck||`, markdown `__f__uck`, `**f**uck`), as
the platform shows it. Each step is a `str` method, a compiled regex or a Rust or C++
library call: a 4,096-character message takes about a millisecond.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opencc
import regex
from disarm import skeleton_key

from bot.moderation.invisible import strip_invisible

# The full-width punctuation of everyday Chinese text, as NFKC writes it.
COMMON_WIDE = tuple((c, unicodedata.normalize("NFKC", c)) for c in "，！？：；（）　～")
# Cyrillic and Greek letters that look like Latin ones (lower case: folding runs after casefold).
LOOKALIKES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h",
    "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b",
    "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ӏ": "l", "ɡ": "g", "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h",
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x",
    "ω": "w", "ϲ": "c", "ϳ": "j",
}
# Digits and symbols read as letters, applied only inside words that are mostly letters.
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
        "!": "i", "|": "l", "€": "e"}
FOLD_TABLE = str.maketrans(LOOKALIKES)
FOLDABLE = re.compile("[" + re.escape("".join(LOOKALIKES)) + "]")
LEET_TABLE = str.maketrans(LEET)

# Letters drawn as symbols that NFKC and TR39 leave as something else: parenthesised ones
# (⒜ U+249C…, 🄐 U+1F110…: both would become "(a)").
LETTER_SYMBOLS = str.maketrans(
    {chr(start + i): chr(ord("a") + i) for start in (0x249C, 0x1F110) for i in range(26)}
)
HAS_LETTER_SYMBOL = re.compile("[\u249c-\u24b5\U0001f110-\U0001f129]")
# Three or more regional indicators spell letters (🇫🇺🇨🇰); two are one flag, and stay one.
REGIONAL_RUN = re.compile("[\U0001f1e6-\U0001f1ff]{3,}")
REGIONAL_A = 0x1F1E6
# Enclosing marks (the keycap U+20E3, circles, squares): `1️⃣` is a 1.
ENCLOSING = re.compile("[\u0488\u0489\u1abe\u20dd-\u20e0\u20e2-\u20e4\ua670-\ua672]")  # \p{Me}, Unicode 16
# What TR39 may change: not ASCII (see `canonical`) and not a CJK ideograph (of those it
# changes only 丨丶丿, into l \ /, which no Chinese word means).
NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\u3400-\u4dbf\u4e00-\u9fff]+")
# A symbol or emoji (not ASCII, not punctuation) between two letters parts them like a space.
SYMBOL_BETWEEN = regex.compile(r"(?<=\p{L})[\p{S}--\p{ASCII}]+(?=\p{L})", regex.V1)
# Markup a platform renders away: spoilers, bold, italics, underline, strike, code.
MARKUP = re.compile(r"[|*_~`]+")
CHINESE_CONVERSION = "t2s"  # OpenCC: traditional Chinese characters to simplified

CJK_RANGES = "\u2e80-\u2fdf\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK = re.compile(f"[{CJK_RANGES}]")
# A token holding a digit or symbol that may stand for a letter (whole tokens only:
# the lookbehind keeps the regex from retrying inside a word).
LEET_TOKEN = re.compile(r"(?<![a-z0-9@$!|€])[a-z]*[0-9@$!|€][a-z0-9@$!|€]*")
LEET_MARK = re.compile(r"[0-9@$!|€]")
# Separators someone types between the letters of one word.
SEPARATORS = r"[\s.,;:!?'\"`()\[\]{}<>\-_*~+|/\\^=#·•]"
# Between Chinese characters only what no sentence puts there: "傻，逼" may be two clauses.
CJK_SEPARATORS = r"[\s.\-_*~+|/\\^=#·•]"
# Three or more single Latin letters, each followed by separators: "f u c k", "s.h.i.t".
# The same separators between every letter of the run: "s.h.i.t, f-u-c-k" is two words.
SPACED_LETTERS = re.compile(rf"\b[a-z]({SEPARATORS}{{1,3}})(?:[a-z]\1)+[a-z]\b", re.ASCII)
SEPARATOR_RUN = re.compile(f"{SEPARATORS}+")
# Separators between Chinese characters, or between one and a Latin letter: "傻 逼", "傻*逼", "傻 b".
CJK_GAP = re.compile(
    rf"(?<=[{CJK_RANGES}]){CJK_SEPARATORS}+(?=[{CJK_RANGES}a-z0-9])"
    rf"|(?<=[a-z0-9]){CJK_SEPARATORS}+(?=[{CJK_RANGES}])"
)
# A spaced-out run of four or more letters that starts with the word "a" or "i".
LEADING_WORD = re.compile(rf"\b[ai](?:{SEPARATORS}{{1,3}}[a-z]){{3}}", re.ASCII)
LATIN_STRETCH = re.compile(r"[a-z0-9*][a-z0-9*' .-]*")
# A letter that two more of itself follow, and one that one more follows: deleting them
# leaves each run of three or more as two, and each run as one. Matched by lookahead and
# replaced with nothing, the regex engine does all the work; a `\1` template costs a
# Python call per run (2 ms of a 12,000-character reply's judgement, about 0.5 ms now,
# as profiled).
LONG_RUN = re.compile(r"([a-z])(?=\1\1)")
ANY_RUN = re.compile(r"([a-z])(?=\1)")
LATIN = re.compile(r"[a-z]")
ACCENTED = re.compile("[\u00c0-\u024f\u1e00-\u1eff]")


@dataclass(frozen=True, slots=True)
class Views:
    """The forms of one text the word lists are matched against.

    `main` keeps double letters ("ass") and shortens longer runs to two;
    `collapsed` shortens every run to one letter ("fuuck" → "fuck"), matched
    against the collapsed form of long entries only; `split` exists when a
    spaced-out run starts with "a" or "i" ("a c u n t" → "a cunt").
    """

    main: str
    collapsed: str | None = None
    split: str | None = None
    unmarked: str | None = None  # without markup characters, when the text has any

    def all(self) -> list[str]:
        return [v for v in (self.main, self.collapsed, self.split, self.unmarked) if v]


def nfkc(text: str) -> str:
    """NFKC, with a fast path: Chinese text is NFKC already but for its full-width
    punctuation, and CPython normalises a whole string slowly once any character needs it."""
    for wide, narrow in COMMON_WIDE:
        if wide in text:
            text = text.replace(wide, narrow)
    if unicodedata.is_normalized("NFKC", text):
        return text
    return unicodedata.normalize("NFKC", text)


def canonical(text: str) -> str:
    """The normal form every layer starts from (see the module docstring). Chinese and
    Latin words keep their spaces and punctuation: those are for the views to judge."""
    # Dropped first: an invisible character between a letter and its accent would keep
    # NFKC from composing them.
    text = strip_invisible(text)
    if not text.isascii():
        text = _letters_from_symbols(text)
    text = nfkc(text).casefold()
    if not text.isascii():
        text = NON_ASCII_RUN.sub(_skeleton, text)
    if FOLDABLE.search(text):  # translate() is slow on long non-ASCII text: skip it when idle
        text = text.translate(FOLD_TABLE)
    if ACCENTED.search(text):
        text = _strip_accents(text)
    return _simplified(text) if has_cjk(text) else text


fold = canonical  # the name the word lists and their tests know it by


def _letters_from_symbols(text: str) -> str:
    """Enclosing marks dropped; regional-indicator runs and parenthesised letters as letters."""
    text = ENCLOSING.sub("", text)
    if HAS_LETTER_SYMBOL.search(text):
        text = text.translate(LETTER_SYMBOLS)
    return REGIONAL_RUN.sub(lambda m: "".join(chr(ord(c) - REGIONAL_A + 97) for c in m.group()), text)


def _skeleton(match: re.Match[str]) -> str:
    """TR39's skeleton of one non-ASCII run (already case folded, so capital I stays i);
    its spacing kept as it was (the skeleton collapses whitespace)."""
    run = match.group()
    folded = skeleton_key(run)
    return folded if folded.strip() or not run.strip() else run


def _simplified(text: str) -> str:
    return str(_converter().convert(text))


@lru_cache(maxsize=1)
def _converter() -> Any:
    """OpenCC's traditional → simplified converter, built once (its dictionaries load in ms)."""
    return opencc.OpenCC(CHINESE_CONVERSION)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    # NFD splits Hangul and kana too; put back whatever was not a Latin accent.
    return unicodedata.normalize("NFC", stripped)


def unleet(text: str) -> str:
    """`sh1t` → `shit`, `@ss` → `ass`; leaves numbers, prices and model names like `a55` alone."""
    return LEET_TOKEN.sub(_unleet_token, text) if LEET_MARK.search(text) else text


def _unleet_token(match: re.Match[str]) -> str:
    token = match.group()
    marks = len(LEET_MARK.findall(token))
    if marks > len(token) - marks:
        return token
    trailing = len(token) - len(token.rstrip("!|"))  # "wow!" keeps its exclamation mark
    body = token[: len(token) - trailing].translate(LEET_TABLE)
    return body + token[len(token) - trailing :]


def join_spaced(text: str) -> str:
    """Join letters typed apart ("f u c k" → "fuck", "傻 逼" → "傻逼")."""
    text = SPACED_LETTERS.sub(lambda m: SEPARATOR_RUN.sub("", m.group()), text)
    return CJK_GAP.sub("", text) if has_cjk(text) else text


def _split_leading_word(text: str) -> str | None:
    """`a c u n t` → `a cunt`: the article before a spaced-out word is a word of its own."""
    changed = False

    def split(match: re.Match[str]) -> str:
        nonlocal changed
        letters = SEPARATOR_RUN.sub("", match.group())
        if letters[0] in "ai" and len(letters) >= 4:
            changed = True
            return f"{letters[0]} {letters[1:]}"
        return letters

    result = SPACED_LETTERS.sub(split, text)
    return join_spaced(result) if changed else None


def shorten_runs(text: str) -> str:
    """Three or more of one letter become two: `shiiiit` → `shiit`, `asssss` → `ass`."""
    return LONG_RUN.sub("", text)


def collapse_runs(text: str) -> str:
    """Every run of one letter becomes one: `fuuck` → `fuck`."""
    return ANY_RUN.sub("", text)


def normalise(text: str) -> str:
    """The main matching form of `text` (also used for word-list entries)."""
    return _main(canonical(text))


def _main(folded: str, unleeted: str | None = None) -> str:
    """The main view of a canonical text: symbols between letters parted, leetspeak read,
    letters typed apart joined, long runs shortened, whitespace collapsed. `unleeted`:
    `unleet(folded)`, when the caller has it (used for ASCII text, which has no symbols
    to part)."""
    if not folded.isascii():
        unleeted = unleet(str(SYMBOL_BETWEEN.sub(" ", folded)))
    elif unleeted is None:
        unleeted = unleet(folded)
    return collapse_whitespace(shorten_runs(join_spaced(unleeted)))


def views(text: str, canon: str | None = None) -> Views:
    """Every form of `text` the word lists are matched against; `canon`, its `canonical`
    form when the caller has it already."""
    canon = canonical(text) if canon is None else canon
    folded = unleet(canon)
    main = _main(canon, folded)
    unmarked = _main(MARKUP.sub("", canon)) if MARKUP.search(canon) else None
    collapsed = collapse_runs(main)
    if collapsed != main and has_cjk(main):
        # Only Latin words change when collapsed: scan just those stretches, not the Chinese text.
        collapsed = " | ".join(LATIN_STRETCH.findall(collapsed))
    split = _split_leading_word(folded) if LEADING_WORD.search(folded) else None
    if split is not None:
        split = collapse_whitespace(shorten_runs(split))
    unmarked = unmarked if unmarked != main else None
    return Views(main, collapsed if collapsed != main else None, split, unmarked)


def collapse_whitespace(text: str) -> str:
    """Each run of whitespace as one space, none at either end (`re.sub(r"\\s+", " ", text).strip()`:
    `str.split` splits on the same characters as `\\s`, `str.isspace`'s, several times faster)."""
    return " ".join(text.split())


def has_cjk(text: str) -> bool:
    return CJK.search(text) is not None


def has_latin(text: str) -> bool:
    return LATIN.search(text) is not None
