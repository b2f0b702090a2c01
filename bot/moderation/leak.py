"""Prompt leakage: a secret canary in the persona, and verbatim repeats of the prompt.

The canary is generated once, stored as a global setting and appended to every
system prompt in the same bytes, so vLLM's prefix cache is unaffected. A reply
that contains it, its fixed prefix (so a half-printed canary counts too) or its
secret part alone, or that shares a run of LEAK_MIN_CHARS letters and digits
with the system prompt, is blocked.

Both checks compare "leak forms", so that a reply cannot dodge them by the way it
writes the same thing: the normal form every layer shares (`normalise.canonical`:
invisible characters removed, NFKC, case folded, TR39 skeletons of what is not ASCII,
symbol-drawn letters, traditional Chinese as simplified), then TR39's digit and letter
classes (`0` is `o`; `1`, `l`, `i` and `|` are one), then everything but letters and
digits dropped: dashes removed, turned into spaces or U+2010 hyphens all read alike.
"""

from __future__ import annotations

import asyncio
import re
import secrets
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
    return NOT_LETTER_OR_DIGIT.sub("", canonical(text).translate(LEAK_CLASSES))


@dataclass(frozen=True, slots=True)
class PromptSecrets:
    """What a reply may not give away from one system prompt, in leak form."""

    markers: tuple[str, ...]  # the canary's prefix and, when the prompt has one, its secret part
    windows: frozenset[str]  # every WINDOW-long run of the prompt


@lru_cache(maxsize=256)
def prompt_secrets(system_prompt: str) -> PromptSecrets:
    """The prompt's secrets, worked out once per prompt (it is the same every turn).
    The prefix alone counts: "hearth" and "canary" side by side in prose is rare enough."""
    found = CANARY.search(system_prompt)
    markers = (_prefix_form(),) + ((leak_form(found.group(1)),) if found else ())
    flat = leak_form(system_prompt) if len(system_prompt) >= LEAK_MIN_CHARS else ""
    return PromptSecrets(markers, frozenset(flat[i : i + WINDOW] for i in range(len(flat) - WINDOW + 1)))


@lru_cache(maxsize=1)
def _prefix_form() -> str:
    return leak_form(CANARY_PREFIX)


def _names_canary(flat: str, kept: PromptSecrets) -> bool:
    return any(marker in flat for marker in kept.markers)


def _repeats(flat: str, kept: PromptSecrets) -> bool:
    windows = kept.windows
    return bool(windows) and any(
        flat[i : i + WINDOW] in windows for i in range(0, len(flat) - WINDOW + 1, STRIDE)
    )


def contains_canary(reply: str, system_prompt: str = "") -> bool:
    """Whether `reply` gives away the canary's prefix, or the secret part of the
    canary in `system_prompt`, however it is written."""
    return _names_canary(leak_form(reply), prompt_secrets(system_prompt))


def repeats_prompt(reply: str, system_prompt: str) -> bool:
    """Whether `reply` shares LEAK_MIN_CHARS consecutive letters and digits with the prompt."""
    if len(system_prompt) < LEAK_MIN_CHARS or len(reply) < LEAK_MIN_CHARS:
        return False
    return _repeats(leak_form(reply), prompt_secrets(system_prompt))


def leaks(reply: str, system_prompt: str) -> bool:
    """Whether a reply gives away the canary or repeats the system prompt verbatim."""
    flat = leak_form(reply)
    kept = prompt_secrets(system_prompt)
    return _names_canary(flat, kept) or _repeats(flat, kept)
