"""The bounded wait: merged messages, dropped ones past the bound, a cap per channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from bot.app.builder import App
from bot.messages import ConversationKey, IncomingMessage
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.conftest import make_settings, open_app
from tests.fakes import RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")


class HeldEngine(FakeEngine):
    """The fake engine; every reply waits for `release`, and the most at once is noted."""

    def __init__(self) -> None:
        super().__init__(Registry.load().get("demo"))
        self.release = asyncio.Event()
        self.started = 0
        self.generating = 0
        self.most = 0

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        self.started += 1
        self.generating += 1
        self.most = max(self.most, self.generating)
        try:
            await self.release.wait()
            async for chunk in super().stream(messages, sampling):
                yield chunk
        finally:
            self.generating -= 1


@asynccontextmanager
async def hearth(tmp_path: Path, engine: FakeEngine, **settings: object) -> AsyncIterator[App]:
    async with open_app(make_settings(tmp_path, **settings), engine) as app:
        yield app


def said(text: str, author: str = "u1", key: ConversationKey = ROOM) -> IncomingMessage:
    return message(text, f"{key}-{text}", key, author=author, direct=False)


def queued(app: App, outcome: str) -> float | None:
    labels = {"platform": "telegram", "outcome": outcome}
    return app.metrics.registry.get_sample_value("hearth_queue_messages_total", labels)


async def until(condition: Callable[[], bool], *, within: float = 5.0, step: float = 0.005) -> None:
    for _ in range(int(within / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"still not so after {within} s")


async def submit_all(
    app: App, adapter: RecordingAdapter, *messages: IncomingMessage
) -> list[asyncio.Task[None]]:
    tasks = [await app.pipeline.submit(m, adapter) for m in messages]
    return [t for t in tasks if t is not None]


async def test_messages_waiting_from_one_author_are_answered_by_one_reply(tmp_path: Path) -> None:
    engine, adapter = HeldEngine(), RecordingAdapter()
    async with hearth(tmp_path, engine) as app:
        tasks = await submit_all(app, adapter, said("first"))
        await until(lambda: engine.started == 1)
        tasks += await submit_all(app, adapter, said("second"), said("third"), said("fourth"))
        engine.release.set()
        await asyncio.gather(*tasks)
        history = await app.store.history(ROOM)
        merged = queued(app, "merged")

    assert adapter.texts() == ["echo: ⟦user-u1⟧: first",
                               "echo: ⟦user-u1⟧: second\n\n⟦user-u1⟧: third\n\n⟦user-u1⟧: fourth"]
    assert [(m.text, m.status) for m in history if m.role == "user"] == [
        ("first", "answered"), ("second", "merged"), ("third", "merged"), ("fourth", "answered"),
    ]
    assert merged == 2


async def test_past_the_bound_the_oldest_waiting_messages_are_dropped(tmp_path: Path) -> None:
    engine, adapter = HeldEngine(), RecordingAdapter()
    async with hearth(tmp_path, engine, queue_merge_limit=2) as app:
        tasks = await submit_all(app, adapter, said("running"))
        await until(lambda: engine.started == 1)
        tasks += await submit_all(app, adapter, *(said(f"w{n}") for n in range(5)))
        await until(lambda: app.pipeline.in_flight() == 2)  # one answering, one waiting, however many came
        engine.release.set()
        await asyncio.gather(*tasks)
        history = await app.store.history(ROOM)
        dropped = queued(app, "dropped")

    assert adapter.texts()[-1] == "echo: ⟦user-u1⟧: w3\n\n⟦user-u1⟧: w4"
    assert [m.text for m in history if m.role == "user"] == ["running", "w3", "w4"], "dropped: out of prompts"
    assert dropped == 3


async def test_other_authors_keep_their_place_and_a_repeating_author_goes_last(tmp_path: Path) -> None:
    engine, adapter = HeldEngine(), RecordingAdapter()
    async with hearth(tmp_path, engine) as app:
        tasks = await submit_all(app, adapter, said("a1", "ann"))
        await until(lambda: engine.started == 1)
        tasks += await submit_all(app, adapter, said("b1", "bob"), said("a2", "ann"), said("c1", "cy"),
                                  said("a3", "ann"))
        engine.release.set()
        await asyncio.gather(*tasks)
        history = await app.store.history(ROOM)

    texts = {m.id: m.text for m in history}
    answered = [texts[m.reply_to] for m in history if m.reply_to is not None]
    assert answered == ["a1", "b1", "c1", "a3"], "a2 merged into a3, at the back of the line"


async def test_a_channel_generates_at_most_its_share_at_once(tmp_path: Path) -> None:
    engine, adapter = HeldEngine(), RecordingAdapter()
    threads = [ConversationKey("discord", "busy", f"t{n}") for n in range(5)]
    elsewhere = ConversationKey("discord", "quiet")
    async with hearth(tmp_path, engine, channel_concurrency=2) as app:
        tasks = await submit_all(app, adapter, *(said("hi", key=k) for k in threads))
        await until(lambda: engine.started == 2)
        tasks += await submit_all(app, adapter, said("hello", key=elsewhere))
        await until(lambda: engine.started == 3)
        assert app.queue.depth() == 6
        engine.release.set()
        await asyncio.gather(*tasks)

    assert engine.most == 3, "two of the busy channel's threads, and the quiet channel"
    assert len(adapter.texts()) == 6


async def test_a_waiting_turn_cancelled_at_shutdown_is_kept_for_after_the_restart(tmp_path: Path) -> None:
    engine, adapter = HeldEngine(), RecordingAdapter()
    async with hearth(tmp_path, engine) as app:
        await submit_all(app, adapter, said("first"))
        await until(lambda: engine.started == 1)
        await submit_all(app, adapter, said("second"), said("third"))
        await app.pipeline.drain(grace_s=0)
        pending = [p.text for p in await app.store.pending(0)]
        assert app.queue.depth() == 0

    assert pending == ["first", "second", "third"], "nothing merged or dropped before its reply came"
