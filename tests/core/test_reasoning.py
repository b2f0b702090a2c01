"""Reasoning models: the thinking is never shown (unless asked), stored or fed back."""

from __future__ import annotations

from collections.abc import Sequence

from bot.app.settings import Settings
from bot.messages import ConversationKey
from engine.fake import FakeEngine
from engine.registry import ModelSpec
from engine.types import ChatMessage
from tests.conftest import open_app
from tests.fakes import BlockingGate, RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")
THINKING = ["<th", "ink>", "The user", " wants a", " secret plan", "</thi", "nk>\n\n", "Hello", " there"]


def thinker(mode: str, script: list[str] = THINKING) -> FakeEngine:
    def reply(messages: Sequence[ChatMessage]) -> list[str]:
        return script

    return FakeEngine(ModelSpec("thinker", "x", reasoning="qwen3", thinking=mode), reply)


def everything_shown(adapter: RecordingAdapter) -> str:
    return "\n".join(version for sent in adapter.sent for version in sent.texts)


async def test_hidden_thinking_never_reaches_the_platform_store_or_next_prompt(settings: Settings) -> None:
    engine, adapter = thinker("hidden"), RecordingAdapter()
    async with open_app(settings, engine) as app:
        await app.pipeline.handle(message("hi", "1"), adapter)
        await app.pipeline.handle(message("and again", "2"), adapter)
        stored = [m.text for m in await app.store.history(ROOM)]

    assert "secret plan" not in everything_shown(adapter)
    assert "💭 thinking…" in everything_shown(adapter), "a status while it thinks"
    assert adapter.texts() == ["Hello there", "Hello there"]
    assert stored == ["hi", "Hello there", "and again", "Hello there"]
    assert all("secret plan" not in m.content for m in engine.prompts[1])


async def test_a_reply_cut_while_still_thinking_says_so(settings: Settings) -> None:
    engine = thinker("hidden", ["<think>", *(["hmm "] * 600)])  # past the 512-token reply cap
    adapter = RecordingAdapter()
    async with open_app(settings, engine) as app:
        await app.pipeline.handle(message("hi", "1"), adapter)

    assert adapter.texts()[0].startswith("Sorry, I ran out of room while still thinking")
    assert "hmm" not in everything_shown(adapter)


async def test_shown_thinking_is_collapsed_and_still_never_stored(settings: Settings) -> None:
    engine, adapter = thinker("shown"), RecordingAdapter()
    async with open_app(settings, engine) as app:
        await app.pipeline.handle(message("hi", "1"), adapter)
        stored = [m.text for m in await app.store.history(ROOM)]

    assert adapter.texts() == ["> 💭 The user wants a secret plan\n\nHello there"]
    assert stored == ["hi", "Hello there"]


async def test_the_output_gate_judges_what_is_shown(settings: Settings) -> None:
    hidden, shown = RecordingAdapter(), RecordingAdapter()
    async with open_app(settings, thinker("hidden"), gate=BlockingGate("secret")) as app:
        await app.pipeline.handle(message("hi", "1"), hidden)
    async with open_app(settings, thinker("shown"), gate=BlockingGate("secret")) as app:
        await app.pipeline.handle(message("hi", "2"), shown)

    assert hidden.texts() == ["Hello there"], "hidden thinking is not judged as shown text"
    assert shown.texts() == ["Sorry, I can't help with that."]
