"""Out of memory: retry with a fifth less reply and history per step, then apologise."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Sequence

from bot.app.settings import Settings
from bot.messages import ConversationKey
from engine.errors import EngineOutOfMemoryError
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.conftest import open_app
from tests.fakes import RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")


class TightEngine(FakeEngine):
    """Runs out of memory when prompt plus reply exceed `capacity` tokens."""

    def __init__(self, capacity: int) -> None:
        super().__init__(Registry.load().get("demo"))
        self.capacity = capacity
        self.asked: list[tuple[int, int]] = []

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        prompt = await self.count_tokens(messages)
        self.asked.append((prompt, sampling.max_tokens))
        if prompt + sampling.max_tokens > self.capacity:
            raise EngineOutOfMemoryError("CUDA out of memory")
        async for chunk in super().stream(messages, sampling):
            yield chunk


async def test_a_reply_too_big_for_memory_is_retried_smaller_and_answered(settings: Settings) -> None:
    engine, adapter = TightEngine(capacity=450), RecordingAdapter()
    async with open_app(settings, engine) as app:
        await app.pipeline.handle(message("hello", "1"), adapter)

    assert adapter.texts() == ["echo: hello"]
    replies = [tokens for _, tokens in engine.asked]
    assert replies[0] == 512 and replies[-1] < 450, "the reply budget shrank until it fitted"
    assert all(later < earlier for earlier, later in itertools.pairwise(replies))


async def test_when_even_the_smallest_budget_fails_the_user_gets_an_apology(settings: Settings) -> None:
    engine, adapter = TightEngine(capacity=10), RecordingAdapter()
    async with open_app(settings, engine) as app:
        await app.pipeline.handle(message("hello", "1"), adapter)
        await app.pipeline.handle(message("still there?", "2"), adapter)

    assert adapter.texts()[0].startswith("Sorry, the model is not available")
    assert len(engine.asked) == 2 * 4, "the first try and three smaller ones, for each message"


async def test_a_message_waiting_for_a_restarting_engine_is_told_so_then_answered(settings: Settings) -> None:
    class Restarting(FakeEngine):
        def stats(self):  # type: ignore[no-untyped-def]
            stats = super().stats()
            stats.state = "restarting" if not self.prompts else "ready"
            return stats

    engine, adapter = Restarting(Registry.load().get("demo")), RecordingAdapter()
    async with open_app(settings, engine) as app:
        await app.pipeline.handle(message("hello", "1"), adapter)

    [sent] = adapter.sent
    assert sent.texts[0].startswith("⏳ The model is restarting")
    assert sent.text == "echo: hello"
