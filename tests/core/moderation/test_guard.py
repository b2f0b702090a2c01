"""Layer 4: the guard model's output parsed into our categories, and the fail mode."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bot.moderation import GateConfig, LayeredGate
from bot.moderation.base import Direction
from bot.moderation.guard import (
    EngineGuard,
    FailMode,
    GuardLayer,
    GuardResult,
    GuardUnavailableError,
    parse_guard_output,
)
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.types import ChatMessage
from tests.core.moderation import ROOM

# Outputs as Qwen3Guard-Gen and Llama Guard 3 print them (model cards' formats).
QWEN_PROMPT_UNSAFE = "Safety: Unsafe\nCategories: Violent"
QWEN_RESPONSE_SAFE = "Safety: Safe\nCategories: None\nRefusal: Yes"
QWEN_MULTI = "Safety: Unsafe\nCategories: Sexual Content or Sexual Acts, Suicide & Self-Harm\nRefusal: No"
QWEN_CONTROVERSIAL = "Safety: Controversial\nCategories: Politically Sensitive Topics"
QWEN_POLITICAL = "Safety: Unsafe\nCategories: Politically Sensitive Topics"
LLAMA_SAFE = "\n\nsafe"
LLAMA_UNSAFE = "\n\nunsafe\nS1,S10"
LLAMA_MINORS = "unsafe\nS4"


@pytest.mark.parametrize(("raw", "expected"), [
    (QWEN_PROMPT_UNSAFE, GuardResult(True, ("violence",))),
    (QWEN_RESPONSE_SAFE, GuardResult(False)),
    (QWEN_MULTI, GuardResult(True, ("sexual", "self-harm"))),
    (QWEN_CONTROVERSIAL, GuardResult(False, (), 0.5)),
    (QWEN_POLITICAL, GuardResult(True, ())),
    (LLAMA_SAFE, GuardResult(False)),
    (LLAMA_UNSAFE, GuardResult(True, ("violence", "illicit/violent", "hate"))),
    (LLAMA_MINORS, GuardResult(True, ("sexual/minors",))),
])
def test_guard_outputs_are_parsed_into_our_categories(raw: str, expected: GuardResult) -> None:
    assert parse_guard_output(raw) == expected


@pytest.mark.parametrize("raw", ["", "I think this is fine.", "Safety level: maybe"])
def test_unparseable_guard_output_is_none(raw: str) -> None:
    assert parse_guard_output(raw) is None


class ScriptedGuard:
    """A guard model that answers from a script, or is down."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Direction]] = []

    async def classify(self, text: str, direction: Direction) -> str:
        self.asked.append((text, direction))
        if self.answer is None:
            raise GuardUnavailableError("scripted outage")
        return self.answer

    async def close(self) -> None:
        pass


def gate_with(answer: str | None, fail: FailMode = "closed") -> LayeredGate:
    return LayeredGate(GateConfig(), guard=GuardLayer(ScriptedGuard(answer), fail))


async def test_the_guard_flags_what_the_lists_miss() -> None:
    verdict = await gate_with(QWEN_PROMPT_UNSAFE).check("a polite but dangerous request", "input", ROOM)
    assert (verdict.flagged, verdict.layer) == (True, "guard")
    assert verdict.categories["violence"] and verdict.category_scores["violence"] == 1.0


async def test_a_safe_guard_answer_allows() -> None:
    verdict = await gate_with(LLAMA_SAFE).check("hello", "input", ROOM)
    assert (verdict.flagged, verdict.layer) == (False, "guard")


async def test_an_unavailable_guard_fails_closed_by_default() -> None:
    verdict = await gate_with(None).check("hello", "input", ROOM)
    assert (verdict.flagged, verdict.layer, verdict.action) == (True, "guard", "block")


async def test_an_unavailable_guard_fails_open_when_configured() -> None:
    verdict = await gate_with(None, "open").check("hello", "input", ROOM)
    assert not verdict.flagged


async def test_unparseable_output_fails_closed() -> None:
    assert (await gate_with("no idea").check("hello", "input", ROOM)).flagged


async def test_unparseable_output_fails_open_when_configured() -> None:
    assert not (await gate_with("no idea", "open").check("hello", "input", ROOM)).flagged


async def test_cheaper_layers_decide_before_the_guard_is_asked() -> None:
    guard = ScriptedGuard(LLAMA_SAFE)
    gate = LayeredGate(GateConfig(), guard=GuardLayer(guard, "closed"))
    verdict = await gate.check("fuck you", "input", ROOM)
    assert verdict.layer == "wordlist" and guard.asked == []


async def test_the_guard_reads_the_text_without_invisible_characters() -> None:
    guard = ScriptedGuard(LLAMA_SAFE)
    gate = LayeredGate(GateConfig(), guard=GuardLayer(guard, "closed"))
    await gate.check("please ex\U000e0020plain photo\u00adsynthesis", "input", ROOM)
    assert guard.asked == [("please explain photosynthesis", "input")]


def guard_engine(answer: str) -> FakeEngine:
    def script(messages: Sequence[ChatMessage]) -> list[str]:
        return [answer]

    return FakeEngine(Registry.load().get("demo"), script)


async def test_the_engine_guard_asks_a_served_model_and_returns_its_text() -> None:
    engine = guard_engine(QWEN_PROMPT_UNSAFE)
    guard = EngineGuard(engine)
    assert await guard.classify("some reply", "output") == QWEN_PROMPT_UNSAFE
    assert [m.role for m in engine.prompts[0]] == ["user", "assistant"]


async def test_an_engine_guard_that_cannot_generate_is_unavailable() -> None:
    engine = guard_engine(LLAMA_SAFE)
    engine.available = False
    with pytest.raises(GuardUnavailableError):
        await EngineGuard(engine).classify("hello", "input")
