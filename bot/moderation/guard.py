"""Layer 4 (optional): a guard model served by vLLM beside the chat model.

Qwen3Guard-Gen (Chinese and English) answers

    Safety: Safe|Unsafe|Controversial
    Categories: Violent, ...
    Refusal: Yes|No          (when judging a reply)

and Llama Guard 3 answers `safe`, or `unsafe` and a line of codes `S1,S10`.
Both become our categories. Controversial counts as safe (Qwen's "loose" mode),
scored 0.5. When the guard cannot answer (not loaded, failed, timed out) or
says something neither parser understands, `HEARTH_GUARD_FAIL` decides:
`closed` blocks the message, `open` lets the other layers' verdict stand.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.errors import HearthError
from bot.moderation.base import Direction
from engine.base import Engine
from engine.errors import EngineError
from engine.types import ChatMessage, Sampling

log = logging.getLogger(__name__)

FailMode = Literal["closed", "open"]
GUARD_TIMEOUT_S = 20.0
RETRY_START_S = 60.0  # after a failed start, try again at most this often
GUARD_SAMPLING = Sampling(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_tokens=48)
# The guard judges a reply as the answer to a user turn; the gate only sees the reply.
REPLY_CONTEXT = "(a message in a chat)"
CONTROVERSIAL_SCORE = 0.5

QWEN_SAFETY = re.compile(r"safety\s*:\s*(safe|unsafe|controversial)", re.IGNORECASE)
QWEN_CATEGORIES = re.compile(r"categories\s*:\s*(.*)", re.IGNORECASE)
LLAMA_VERDICT = re.compile(r"^\s*(safe|unsafe)\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
LLAMA_CODE = re.compile(r"\bS(\d{1,2})\b")

# Qwen3Guard's categories → ours. Politically sensitive topics have no OpenAI
# counterpart: such a verdict is flagged with no category set (the layer says why).
QWEN_MAP: dict[str, tuple[str, ...]] = {
    "violent": ("violence",),
    "non-violent illegal acts": ("illicit",),
    "sexual content or sexual acts": ("sexual",),
    "pii": ("illicit",),
    "suicide & self-harm": ("self-harm",),
    "unethical acts": ("harassment",),
    "politically sensitive topics": (),
    "copyright violation": ("illicit",),
    "jailbreak": ("illicit",),
}
# Llama Guard 3's hazard codes (MLCommons taxonomy) → ours.
LLAMA_MAP: dict[int, tuple[str, ...]] = {
    1: ("violence", "illicit/violent"),
    2: ("illicit",),
    3: ("sexual",),
    4: ("sexual/minors",),
    5: ("harassment",),
    6: (),
    7: ("illicit",),
    8: ("illicit",),
    9: ("illicit/violent",),
    10: ("hate",),
    11: ("self-harm",),
    12: ("sexual",),
    13: (),
    14: ("illicit",),
}


class GuardUnavailableError(HearthError):
    """The guard model could not give an answer."""


@dataclass(frozen=True, slots=True)
class GuardResult:
    """A guard model's answer in our terms."""

    flagged: bool
    categories: tuple[str, ...] = ()
    score: float = 1.0


def parse_guard_output(raw: str) -> GuardResult | None:
    """Qwen3Guard-Gen or Llama Guard 3 output as a `GuardResult`; None if neither."""
    return _parse_qwen(raw) or _parse_llama(raw)


def _parse_qwen(raw: str) -> GuardResult | None:
    safety = QWEN_SAFETY.search(raw)
    if safety is None:
        return None
    label = safety.group(1).lower()
    found = QWEN_CATEGORIES.search(raw)
    names = [n.strip().lower() for n in found.group(1).split(",")] if found else []
    categories = tuple(c for n in names for c in QWEN_MAP.get(n, ()))
    if label == "safe":
        return GuardResult(False)
    if label == "controversial":
        return GuardResult(False, categories, CONTROVERSIAL_SCORE)
    return GuardResult(True, categories)


def _parse_llama(raw: str) -> GuardResult | None:
    verdict = LLAMA_VERDICT.match(raw)
    if verdict is None:
        return None
    if verdict.group(1).lower() == "safe":
        return GuardResult(False)
    codes = [int(c) for c in LLAMA_CODE.findall(verdict.group(2))]
    return GuardResult(True, tuple(c for code in codes for c in LLAMA_MAP.get(code, ())))


class GuardModel(Protocol):
    """Something that answers a guard prompt with the guard model's raw text."""

    async def classify(self, text: str, direction: Direction) -> str: ...

    async def close(self) -> None: ...


class EngineGuard:
    """A guard model behind Hearth's `Engine` interface (a second `VllmEngine`).

    Started on first use, so Hearth starts as fast without it; a failed start is
    retried at most every RETRY_START_S seconds.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._started = False
        self._failed_at = float("-inf")

    async def classify(self, text: str, direction: Direction) -> str:
        await self._start()
        try:
            return await asyncio.wait_for(self._generate(_guard_messages(text, direction)), GUARD_TIMEOUT_S)
        except TimeoutError:
            raise GuardUnavailableError("guard model timed out") from None
        except (HearthError, EngineError) as exc:
            raise GuardUnavailableError(str(exc)) from exc

    async def close(self) -> None:
        async with self._lock:
            if self._started:
                await self._engine.close()
                self._started = False

    async def _start(self) -> None:
        async with self._lock:
            if self._started:
                return
            if time.monotonic() - self._failed_at < RETRY_START_S:
                raise GuardUnavailableError("guard model failed to start recently")
            try:
                await self._engine.start()
            except (HearthError, EngineError) as exc:
                self._failed_at = time.monotonic()
                raise GuardUnavailableError(str(exc)) from exc
            self._started = True

    async def _generate(self, messages: Sequence[ChatMessage]) -> str:
        parts: list[str] = []
        async with aclosing(self._engine.stream(messages, GUARD_SAMPLING)) as chunks:
            async for chunk in chunks:
                parts.append(chunk.text)
        return "".join(parts)


def _guard_messages(text: str, direction: Direction) -> list[ChatMessage]:
    if direction == "input":
        return [ChatMessage("user", text)]
    return [ChatMessage("user", REPLY_CONTEXT), ChatMessage("assistant", text)]


class GuardLayer:
    """Asks the guard model and applies the fail mode."""

    def __init__(self, model: GuardModel, fail: FailMode) -> None:
        self._model = model
        self._fail = fail

    async def judge(self, text: str, direction: Direction) -> GuardResult:
        try:
            raw = await self._model.classify(text, direction)
        except GuardUnavailableError as exc:
            log.warning("guard model unavailable (failing %s): %s", self._fail, exc)
            return self._failure()
        result = parse_guard_output(raw)
        if result is None:
            log.warning("guard output not understood (failing %s): %.200r", self._fail, raw)
            return self._failure()
        return result

    def _failure(self) -> GuardResult:
        return GuardResult(self._fail == "closed", (), 1.0 if self._fail == "closed" else 0.0)

    async def close(self) -> None:
        await self._model.close()
