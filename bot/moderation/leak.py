"""Prompt leakage: a secret canary in the persona, and verbatim repeats of the prompt.

The canary is generated once, stored as a global setting and appended to every
system prompt in the same bytes, so vLLM's prefix cache is unaffected. A reply
that contains it (or its fixed prefix, so a half-printed canary counts too), or
that shares a run of LEAK_MIN_CHARS characters with the system prompt, is blocked.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from functools import lru_cache
from typing import Protocol

CANARY_SETTING = "moderation_canary"
CANARY_PREFIX = "hearth-canary-"
CANARY = re.compile(rf"{CANARY_PREFIX}[0-9a-f]{{16}}")
# Shortest verbatim run of the system prompt a reply may not repeat (whitespace and
# case aside): long enough that "I'm Hearth, a friendly assistant" is not a leak.
LEAK_MIN_CHARS = 64
# Reply windows are sampled every STRIDE characters; a shared run of LEAK_MIN_CHARS
# always contains one whole sampled window of WINDOW characters.
STRIDE = 16
WINDOW = LEAK_MIN_CHARS - STRIDE + 1
SPACES = re.compile(r"\s+")
INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff]")


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


def _flat(text: str) -> str:
    return SPACES.sub(" ", INVISIBLE.sub("", text)).casefold()


@lru_cache(maxsize=256)
def _prompt_windows(system_prompt: str) -> frozenset[str]:
    flat = _flat(system_prompt)
    return frozenset(flat[i : i + WINDOW] for i in range(len(flat) - WINDOW + 1))


def contains_canary(reply: str) -> bool:
    flat = SPACES.sub("", INVISIBLE.sub("", reply)).casefold()
    return CANARY_PREFIX in flat


def repeats_prompt(reply: str, system_prompt: str) -> bool:
    """Whether `reply` shares LEAK_MIN_CHARS consecutive characters with the prompt."""
    if len(system_prompt) < LEAK_MIN_CHARS or len(reply) < LEAK_MIN_CHARS:
        return False
    windows = _prompt_windows(system_prompt)
    flat = _flat(reply)
    return any(flat[i : i + WINDOW] in windows for i in range(0, len(flat) - WINDOW + 1, STRIDE))


def leaks(reply: str, system_prompt: str) -> bool:
    """Whether a reply gives away the canary or repeats the system prompt verbatim."""
    return contains_canary(reply) or repeats_prompt(reply, system_prompt)
