"""Prompt leakage: a secret canary in the persona, and verbatim repeats of the prompt.

The canary is generated once, stored as a global setting and appended to every
system prompt in the same bytes, so vLLM's prefix cache is unaffected. A reply is
blocked when it:

- contains the canary, its fixed prefix (so a half-printed canary counts too), its
  secret part alone, or both halves of the secret apart; read as written and also
  decoded: reversed, rot13, and every run that decodes as hex or base64 (`decodings`);
- shares a run of LEAK_MIN_CHARS letters and digits with the system prompt, or of
  CJK_MIN_CHARS Chinese, Japanese or Korean characters (a CJK character carries about
  what a Latin word does: counting them as letters let a 35-character Chinese persona
  be repeated verbatim);
- repeats most of it in pieces (`covers_most`): MOST of the prompt's letters (or CJK
  characters) covered by SHINGLE-long pieces the reply shares, at least MIN_COVERED.

Both checks compare "leak forms", so that a reply cannot dodge them by the way it
writes the same thing: the normal form every layer shares (`normalise.canonical`:
invisible characters removed, NFKC, case folded, TR39 skeletons of what is not ASCII,
symbol-drawn letters, traditional Chinese as simplified), then TR39's digit and letter
classes (`0` is `o`; `1`, `l`, `i` and `|` are one), then everything but letters and
digits dropped: dashes removed, turned into spaces or U+2010 hyphens all read alike.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from bot.moderation.normalise import canonical

CANARY_SETTING = "moderation_canary"
CANARY_PREFIX = "hearth-canary-"
CANARY = re.compile(rf"{CANARY_PREFIX}([0-9a-f]{{16}})")
# Shortest run of the system prompt's letters and digits a reply may not repeat
# (everything else aside): long enough that "I'm Hearth, a friendly assistant" is not a
# leak. About 64 typed characters: one in five of English prose is a space or punctuation.
LEAK_MIN_CHARS = 52
# Reply windows are sampled every STRIDE characters; a shared run of LEAK_MIN_CHARS
# always contains one whole sampled window of WINDOW characters.
STRIDE = 16
WINDOW = LEAK_MIN_CHARS - STRIDE + 1
# TR39's classes for identifiers: "0" and "O", "1", "I" (case folded: "i") and "l" are
# one letter, as they look.
LEAK_CLASSES = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l"})
NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")
# The same for ASCII text, as bytes to delete: `bytes.translate` is ten times faster.
ASCII_NOT_LETTER_OR_DIGIT = bytes(code for code in range(128) if not chr(code).isalnum())
CLASS_PAIRS = tuple((chr(code), klass) for code, klass in LEAK_CLASSES.items())
# CJK: counted by characters, in a form of their own (only those characters, in order).
CJK_CHARS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
CJK_MIN_CHARS = 16
CJK_STRIDE = 4
CJK_WINDOW = CJK_MIN_CHARS - CJK_STRIDE + 1
# Most of the prompt, in pieces: SHINGLE-long pieces of each form the reply shares cover at
# least MOST of the prompt's form and at least MIN_COVERED of its characters.
SHINGLE = {"latin": 10, "cjk": 4}
MIN_COVERED = {"latin": 40, "cjk": 12}
MOST = 0.6
# System prompts whose secrets are kept (`prompt_secrets`): one per active channel, as a
# channel's name is in its prompt, so sized for a burst from 10,000 channels. About 3 KB
# each for the default persona (its forms as text; the canary's patterns are shared): 48 MB
# at most. Fewer (1,024) made a 10,000-channel burst work each out twice (two judgements
# per reply, 10,000 channels apart).
PROMPTS_KEPT = 16_384
# Encoded runs worth decoding: at least ENCODED_MIN characters of hex (separators allowed) or base64.
ENCODED_MIN = 16
HEX_RUN = re.compile(r"(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[\s:,-]*){8,}")
# Every HEX_RUN match lies in a run like this (its characters, 16 or more, starting as one
# may): a search that the regex engine can skip through, where HEX_RUN tries each position.
HEX_CANDIDATE = re.compile(r"[0-9A-Fa-f\\][0-9A-Fa-fx\\\s:,-]{15,}")
HEX_NOISE = re.compile(r"0x|\\x|[\s:,-]")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


class SettingStore(Protocol):
    async def get_setting(self, name: str) -> str | None: ...

    async def set_setting(self, name: str, value: str) -> None: ...


def new_canary() -> str:
    return CANARY_PREFIX + secrets.token_hex(8)


async def load_canary(store: SettingStore) -> str:
    """The installation's canary: made on first use, then the same forever."""
    canary = await store.get_setting(CANARY_SETTING)
    if canary is None or not CANARY.fullmatch(canary):
        canary = new_canary()
        await store.set_setting(CANARY_SETTING, canary)
    return canary


class Canary:
    """The installation's canary, read (or made) once from `store` and then remembered."""

    def __init__(self, store: SettingStore) -> None:
        self._store = store
        self._value: str | None = None
        self._lock = asyncio.Lock()

    async def value(self) -> str:
        async with self._lock:
            if self._value is None:
                self._value = await load_canary(self._store)
            return self._value


def leak_form(text: str) -> str:
    """`text` as the leak checks compare it (see the module docstring)."""
    return _leak_form(canonical(text))


def _leak_form(canon: str) -> str:
    return letters_and_digits(_classed(canon))


def _classed(text: str) -> str:
    """`text` with LEAK_CLASSES applied, as str.replace: about five times faster than
    str.translate with a dict (25 against 117 µs for the default persona)."""
    for char, klass in CLASS_PAIRS:
        text = text.replace(char, klass)
    return text


def letters_and_digits(text: str) -> str:
    """`text` without what is not a letter or a digit (Unicode's, as `\\w` less `_`)."""
    if text.isascii():
        return text.encode("ascii").translate(None, ASCII_NOT_LETTER_OR_DIGIT).decode("ascii")
    return NOT_LETTER_OR_DIGIT.sub("", text)


def cjk_form(text: str) -> str:
    """The CJK characters of `text`'s normal form (`canonical`: traditional as simplified), in order."""
    return _cjk_form(canonical(text))


def _cjk_form(canon: str) -> str:
    return "".join(CJK_CHARS.findall(canon))


Half = tuple[str, re.Pattern[str]]  # a half of the secret, and its pattern alone (`_alone`)


@dataclass(frozen=True, slots=True)
class PromptSecrets:
    """What a reply may not give away from one system prompt, in leak form."""

    markers: tuple[str, ...]  # the canary's prefix and, when the prompt has one, its secret part
    halves: tuple[Half, Half] | None  # the secret's two halves, each alone
    flat: str  # the whole prompt's leak form ("" when shorter than LEAK_MIN_CHARS)
    cjk: str  # the whole prompt's CJK form
    forms: tuple[Form, ...]  # the prompt's form without the canary, per script, for `covers_most`


@lru_cache(maxsize=PROMPTS_KEPT)
def prompt_secrets(system_prompt: str) -> PromptSecrets:
    """The prompt's secrets, worked out once per prompt (it is the same every turn in a
    channel; each channel's differs, by its name). About 3 KB and 63 µs for the default
    persona. The prefix alone counts: "hearth" and "canary" side by side in prose is rare
    enough."""
    found = CANARY.search(system_prompt)
    secret = leak_form(found.group(1)) if found else ""
    markers = (_prefix_form(),) + ((secret,) if secret else ())
    halves = _halves(secret) if secret else None
    prompt = canonical(system_prompt)
    # The persona: the prompt without its canaries (ASCII, which `canonical` only
    # case-folds), in leak form: the same letters and digits without the canaries' own.
    whole = persona = _leak_form(prompt)
    for canary in CANARY.finditer(prompt):
        persona = persona.replace(_leak_form(canary.group(0)), "")
    cjk = _cjk_form(prompt)  # a canary has no CJK characters: the persona's are the prompt's
    flat = whole if len(system_prompt) >= LEAK_MIN_CHARS else ""
    return PromptSecrets(markers, halves, flat, cjk, (Form("latin", persona), Form("cjk", cjk)))


@lru_cache(maxsize=4)
def _halves(secret: str) -> tuple[Half, Half]:
    """The secret's two halves, each alone (`_alone`): one canary per installation, so
    every channel's prompt shares the same two patterns."""
    return _alone(secret[: len(secret) // 2]), _alone(secret[len(secret) // 2 :])


def _alone(half: str) -> Half:
    """`half`, and a pattern of it not inside a longer number, which a hex value next to
    the secret would be. The text is looked for first: a pattern that starts with a
    lookbehind is tried at every position (1 ms a 10,000-character reply; 0.1 ms found)."""
    return half, re.compile(rf"(?<![a-z0-9]){re.escape(half)}(?![a-z0-9])")


@dataclass(frozen=True, slots=True)
class Form:
    """One script's form of the prompt. Its SHINGLE-long pieces are not kept: a set of
    them cost about 53 KB and 32 µs per prompt for the default persona (each channel has
    its own), where searching the text for a short reply's pieces costs about 10 µs more
    per judgement."""

    script: str
    text: str

    def pieces(self) -> set[str]:
        """The text's distinct SHINGLE-long pieces."""
        size = SHINGLE[self.script]
        return {self.text[i : i + size] for i in range(len(self.text) - size + 1)}

    def starts(self, piece: str) -> Iterator[int]:
        """Where `piece` starts in the text, overlapping occurrences included."""
        start = self.text.find(piece)
        while start >= 0:
            yield start
            start = self.text.find(piece, start + 1)


@lru_cache(maxsize=1)
def _prefix_form() -> str:
    return leak_form(CANARY_PREFIX)


@dataclass(frozen=True, slots=True)
class View:
    """A reply's canonical form with the leak classes applied (`classed`), and its letters
    and digits alone (`flat`, its leak form)."""

    classed: str
    flat: str

    @classmethod
    def of(cls, text: str) -> View:
        classed = _classed(text)
        return cls(classed, letters_and_digits(classed))

    def reversed(self) -> View:
        return View(self.classed[::-1], self.flat[::-1])


def _names_canary(view: View, kept: PromptSecrets) -> bool:
    """Whether a view of a reply holds a marker, or both halves of the secret apart."""
    flat, classed = view.flat, view.classed
    if any(marker in flat for marker in kept.markers):
        return True
    return kept.halves is not None and all(
        text in classed and alone.search(classed) for text, alone in kept.halves
    )


def _repeats(flat: str, prompt: str, size: int, stride: int) -> bool:
    """Whether a sampled `size`-long run of `flat` (every `stride`) occurs in `prompt`: a
    shared run of `size + stride - 1` always contains a sampled one. Searched in the
    prompt's form, not looked up in a set of its runs: a set cost 70 KB and 130 µs per
    prompt, and each channel has its own prompt; the check costs the same (158 against
    162 µs for a 180-character reply against the default persona)."""
    return len(prompt) >= size and any(
        flat[i : i + size] in prompt for i in range(0, len(flat) - size + 1, stride)
    )


def views(reply: str, text: str, forward: View) -> Iterator[View]:
    """Where the canary is looked for: the reply's view (`forward`, of `text`, its
    `canonical`), reversed and rot13, then each run of `reply` that decodes as hex or base64."""
    yield forward
    yield forward.reversed()
    yield View.of(codecs.encode(text, "rot13"))
    for decoded in _decoded_runs(reply):
        yield View.of(canonical(decoded))


def _decoded_runs(reply: str) -> Iterator[str]:
    for run in HEX_RUN.findall(reply) if HEX_CANDIDATE.search(reply) else ():
        digits = HEX_NOISE.sub("", run)
        if len(digits) >= ENCODED_MIN and len(digits) % 2 == 0:
            yield bytes.fromhex(digits).decode("utf-8", "ignore")
    for run in BASE64_RUN.findall(reply):
        yield from _base64(run)


def _base64(run: str) -> Iterator[str]:
    """The run decoded as standard and as URL-safe base64 (padding restored), when it decodes."""
    padded = run.rstrip("=") + "=" * (-len(run.rstrip("=")) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            yield decode(padded).decode("utf-8", "ignore")
        except (binascii.Error, ValueError):
            continue


def contains_canary(reply: str, system_prompt: str = "") -> bool:
    """Whether `reply` gives away the canary's prefix, or the secret part of the canary in
    `system_prompt` (whole, or both halves apart), however it is written or encoded."""
    text = canonical(reply)
    return _gives_canary(reply, text, View.of(text), prompt_secrets(system_prompt))


def repeats_prompt(reply: str, system_prompt: str) -> bool:
    """Whether `reply` shares LEAK_MIN_CHARS consecutive letters and digits, or CJK_MIN_CHARS
    consecutive CJK characters, with the prompt, or covers most of it (`covers_most`)."""
    text = canonical(reply)
    return _repeats_prompt(text, View.of(text).flat, prompt_secrets(system_prompt))


def _gives_canary(reply: str, text: str, forward: View, kept: PromptSecrets) -> bool:
    return any(_names_canary(view, kept) for view in views(reply, text, forward))


def _repeats_prompt(text: str, flat: str, kept: PromptSecrets) -> bool:
    cjk = "".join(CJK_CHARS.findall(text))
    return (
        _repeats(flat, kept.flat, WINDOW, STRIDE)
        or _repeats(cjk, kept.cjk, CJK_WINDOW, CJK_STRIDE)
        or covers_most({"latin": flat, "cjk": cjk}, kept)
    )


def covers_most(reply_forms: dict[str, str], kept: PromptSecrets) -> bool:
    """Whether, in some script, SHINGLE-long pieces the reply shares with the prompt cover
    MOST of the prompt's form and at least MIN_COVERED of its characters."""
    for form in kept.forms:
        size, reply, least = SHINGLE[form.script], reply_forms[form.script], MIN_COVERED[form.script]
        if len(form.text) < least or len(reply) < size:
            continue
        text = form.text
        if len(reply) < len(text):  # the reply's pieces are fewer: search the prompt for each
            shared = {piece for i in range(len(reply) - size + 1) if (piece := reply[i : i + size]) in text}
        else:  # the prompt's are fewer: search the reply for each
            shared = {piece for piece in form.pieces() if piece in reply}
        starts = [start for piece in shared for start in form.starts(piece)]
        if len(starts) * size < max(least, MOST * len(form.text)):
            continue  # cannot cover enough, even without overlaps
        covered = bytearray(len(form.text))
        for start in starts:
            covered[start : start + size] = b"\x01" * size
        count = sum(covered)
        if count >= least and count >= MOST * len(form.text):
            return True
    return False


def leaks(reply: str, system_prompt: str, canon: str | None = None) -> bool:
    """Whether a reply gives away the canary or repeats the system prompt (see the module
    docstring). The reply's normal form (`canon`, when the caller has it) is worked out
    once, for every check."""
    text, kept = canonical(reply) if canon is None else canon, prompt_secrets(system_prompt)
    forward = View.of(text)
    return _gives_canary(reply, text, forward, kept) or _repeats_prompt(text, forward.flat, kept)
