"""The pipeline on the fake engine and a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import pytest

from bot.app.builder import App, HearthBuilder
from bot.app.settings import Settings
from bot.errors import DeliveryError
from bot.messages import ConversationKey
from bot.pipeline import PromptLimits
from bot.store import SqliteStore
from engine.errors import EngineUnavailableError
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.types import ChatMessage, ReplyChunk, Sampling
from tests.conftest import open_app
from tests.fakes import BlockingGate, RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")
OTHER = ConversationKey("telegram", "other")


async def test_reply_streams_by_editing_one_message(app: App, adapter: RecordingAdapter) -> None:
    await app.pipeline.handle(message("hello there friend", "1"), adapter)

    [sent] = adapter.sent
    assert sent.text == "echo: hello there friend"
    assert len(sent.texts) > 1, "expected a post followed by edits"
    assert all(sent.texts[-1].startswith(t) for t in sent.texts)


async def test_both_turns_and_their_verdicts_are_stored(app: App, adapter: RecordingAdapter) -> None:
    await app.pipeline.handle(message("hi", "1"), adapter)

    history = await app.store.history(ROOM)
    assert [(m.role, m.text) for m in history] == [("user", "hi"), ("assistant", "echo: hi")]
    assert history[1].reply_to == history[0].id
    assert history[1].platform_message_id == adapter.sent[0].message_id
    verdicts = await app.store.verdicts(ROOM)
    assert [(mid, d) for mid, d, _ in verdicts] == [(history[0].id, "input"), (history[1].id, "output")]


async def test_a_message_delivered_twice_is_answered_once(app: App, adapter: RecordingAdapter) -> None:
    twice = [app.pipeline.handle(message("hi", "7"), adapter) for _ in range(2)]
    await asyncio.gather(*twice)
    await app.pipeline.handle(message("hi", "7"), adapter)

    assert len(adapter.sent) == 1
    assert await app.store.message_count() == 2


async def test_engine_failure_is_a_polite_reply_and_keeps_the_message(
    app: App, adapter: RecordingAdapter
) -> None:
    assert isinstance(app.engine, FakeEngine)
    app.engine.available = False

    await app.pipeline.handle(message("are you there?", "1"), adapter)

    assert adapter.texts() == ["Sorry, the model is not available right now. Please try again in a moment."]
    assert await app.store.message_count() == 1, "the message is kept"
    assert await app.store.history(ROOM) == [], "a failed turn never enters a later prompt"


async def test_errors_are_told_in_the_users_language(app: App, adapter: RecordingAdapter) -> None:
    assert isinstance(app.engine, FakeEngine)
    app.engine.available = False

    await app.pipeline.handle(message("你好，在吗？", "1"), adapter)

    assert adapter.texts() == ["抱歉，模型暂时不可用，请稍后再试。"]


async def test_an_oversized_message_is_refused_and_the_bot_goes_on(
    app: App, adapter: RecordingAdapter
) -> None:
    limit = app.settings.max_message_chars
    await app.pipeline.handle(message("x" * (limit + 1), "1"), adapter)
    await app.pipeline.handle(message("short", "2"), adapter)

    assert adapter.texts()[0].startswith("Sorry, that message is too long")
    assert adapter.texts()[1] == "echo: short"


async def test_an_unexpected_error_becomes_a_generic_apology(
    app: App, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    def broken(messages: Sequence[ChatMessage]) -> list[str]:
        raise RuntimeError("boom")

    engine.script = broken
    await app.pipeline.handle(message("hi", "1"), adapter)

    assert adapter.texts() == ["Sorry, something went wrong on my side. Please try again."]


async def test_an_error_reply_the_platform_refuses_is_one_line_in_the_log(
    app: App, adapter: RecordingAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    """A user who blocked the bot, a chat that is gone: the platform's word, not a traceback."""

    class Refusing(RecordingAdapter):
        async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
            raise DeliveryError("telegram", 400, "Bad Request: chat not found")

    assert isinstance(app.engine, FakeEngine)
    app.engine.available = False
    await app.pipeline.handle(message("are you there?", "1"), Refusing())

    [logged] = [r for r in caplog.records if "could not deliver an error reply" in r.getMessage()]
    assert logged.levelname == "WARNING" and logged.exc_info is None
    assert "chat not found" in logged.getMessage()


async def test_an_engine_lost_as_hearth_is_told_to_stop_keeps_the_message_for_the_restart(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    """A terminal's Ctrl-C goes to every process of its group: vLLM's engine stops with
    Hearth, under the reply in progress. That is an interruption, not a failure."""
    stop = asyncio.Event()

    class StoppedWithHearth(FakeEngine):
        async def stream(
            self, messages: Sequence[ChatMessage], sampling: Sampling
        ) -> AsyncGenerator[ReplyChunk]:
            async for chunk in super().stream(messages, sampling):
                yield chunk
                stop.set()
                raise EngineUnavailableError("the engine died during the reply")

    dying = StoppedWithHearth(engine.spec, lambda messages: ["half", " an", " answer"])
    async with SqliteStore(settings.database) as store:
        await dying.start()
        async with HearthBuilder(settings).engine(dying).store(store).stopping(stop.is_set).build() as app:
            await app.pipeline.handle(message("tell me", "1"), adapter)
            pending = await app.store.pending(since=0)

    assert [p.text for p in pending] == ["tell me"], "answered after the next start"
    assert "interrupted" in adapter.texts()[-1] and "Sorry" not in adapter.texts()[-1]


async def test_flagged_input_never_reaches_the_engine(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with open_app(settings, engine, gate=BlockingGate("badword")) as app:
        await app.pipeline.handle(message("you badword", "1"), adapter)
        verdicts = await app.store.verdicts(ROOM)

    assert engine.prompts == []
    assert adapter.texts() == ["Sorry, I can't help with that."]
    [(_, direction, verdict)] = verdicts
    assert direction == "input" and verdict.flagged


async def test_a_reply_that_turns_bad_is_replaced_unseen(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    engine.script = lambda m: ["fine ", "so ", "far ", "badword ", "more"]
    async with open_app(settings, engine, gate=BlockingGate("badword")) as app:
        await app.pipeline.handle(message("hi", "1"), adapter)
        reply = (await app.store.history(ROOM))[-1]
        last_verdict = (await app.store.verdicts(ROOM))[-1][2]

    [sent] = adapter.sent
    assert all("badword" not in text for text in sent.texts)
    assert sent.text == "Sorry, I can't help with that."
    assert reply.text == sent.text
    assert last_verdict.flagged


async def test_later_message_sees_the_earlier_reply(
    app: App, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    slow = engine
    slow.delay = 0.01

    await asyncio.gather(
        app.pipeline.handle(message("first", "1", direct=False), adapter),
        app.pipeline.handle(message("second", "2", direct=False), adapter),
    )

    second_prompt = [m.content for m in slow.prompts[1]]
    assert second_prompt[1:] == ["⟦user-u1⟧: first", "echo: ⟦user-u1⟧: first", "⟦user-u1⟧: second"]
    assert adapter.texts() == ["echo: ⟦user-u1⟧: first", "echo: ⟦user-u1⟧: second"]


async def test_conversations_are_answered_concurrently(
    settings: Settings, registry: Registry, adapter: RecordingAdapter
) -> None:
    """Room's reply can only finish once Other's has started: serialised, this deadlocks."""
    other_started = asyncio.Event()

    def script(messages: Sequence[ChatMessage]) -> list[str]:
        if "other" in messages[-1].content:
            other_started.set()
        return ["ok"]

    class WaitingEngine(FakeEngine):
        async def stream(self, messages, sampling):  # type: ignore[no-untyped-def,override]
            if "room" in messages[-1].content:
                await other_started.wait()
            async for chunk in super().stream(messages, sampling):
                yield chunk

    async with open_app(settings, WaitingEngine(registry.get("demo"), script)) as app:
        await asyncio.wait_for(
            asyncio.gather(
                app.pipeline.handle(message("room", "1", ROOM), adapter),
                app.pipeline.handle(message("other", "2", OTHER), adapter),
            ),
            timeout=10,
        )
    assert sorted(adapter.texts()) == ["ok", "ok"]


async def test_group_messages_carry_the_author_name(app: App, adapter: RecordingAdapter) -> None:
    assert isinstance(app.engine, FakeEngine)
    await app.pipeline.handle(message("hi", "1", direct=False), adapter)
    await app.pipeline.handle(message("hi", "2", ConversationKey("telegram", "dm"), direct=True), adapter)

    assert app.engine.prompts[0][-1].content == "⟦user-u1⟧: hi"
    assert app.engine.prompts[1][-1].content == "hi"


async def test_system_prompt_is_first_and_identical_across_turns(
    app: App, adapter: RecordingAdapter
) -> None:
    assert isinstance(app.engine, FakeEngine)
    for n in range(3):
        await app.pipeline.handle(message(f"turn {n}", str(n)), adapter)

    prompts = app.engine.prompts
    assert all(p[0].role == "system" for p in prompts)
    assert len({p[0].content for p in prompts}) == 1
    assert prompts[2][: len(prompts[1])] == prompts[1], "earlier turns must never be rewritten"


async def test_long_history_is_trimmed_by_whole_turns(app: App, adapter: RecordingAdapter) -> None:
    assert isinstance(app.engine, FakeEngine)
    words = " ".join(["word"] * 100)
    for n in range(30):
        await app.pipeline.handle(message(f"{n} {words}", str(n), direct=False), adapter)

    budget = PromptLimits(app.settings.history_messages, app.settings.max_reply_tokens).budget(
        app.engine.max_model_len
    )
    last = app.engine.prompts[-1]
    assert await app.engine.count_tokens(last) <= budget
    assert last[0].role == "system"
    assert [m.role for m in last[1:]] == ["user", "assistant"] * ((len(last) - 2) // 2) + ["user"]
    assert last[-1].content.startswith("⟦user-u1⟧: 29 ")
    assert len(last) < 2 * 30


async def test_a_flagged_message_never_reaches_later_prompts(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with open_app(settings, engine, gate=BlockingGate("badword")) as app:
        await app.pipeline.handle(message("you badword", "1"), adapter)
        await app.pipeline.handle(message("hello", "2"), adapter)

    [prompt] = engine.prompts
    assert all("badword" not in m.content for m in prompt)


async def test_a_long_reply_cut_by_the_gate_leaves_nothing_of_it_on_screen(
    settings: Settings, engine: FakeEngine
) -> None:
    """Issue example: ~2,600 characters over two messages, then a bad word: one refusal remains."""
    adapter = RecordingAdapter(max_chars=2000)
    engine.script = lambda m: [*(["fine text "] * 260), "badword"]
    async with open_app(settings, engine, gate=BlockingGate("badword")) as app:
        await app.pipeline.handle(message("tell me a lot", "1"), adapter)

    assert len(adapter.sent) == 2, "the reply spanned two messages before the cut"
    assert adapter.texts() == ["Sorry, I can't help with that."]
    assert adapter.sent[1].deleted


async def test_a_surplus_message_the_platform_will_not_delete_is_blanked(
    settings: Settings, engine: FakeEngine
) -> None:
    class Undeletable(RecordingAdapter):
        async def delete(self, key: ConversationKey, message_id: str) -> None:
            raise DeliveryError("test", 403, "Missing Permissions")

    adapter = Undeletable(max_chars=2000)
    engine.script = lambda m: [*(["fine text "] * 260), "badword"]
    async with open_app(settings, engine, gate=BlockingGate("badword")) as app:
        await app.pipeline.handle(message("tell me a lot", "1"), adapter)

    assert adapter.texts() == ["Sorry, I can't help with that.", "…"]
