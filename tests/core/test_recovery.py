"""Nothing lost: messages stored before anything else, interrupted at shutdown, answered
once after a restart; failed turns never poison a conversation."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.app.builder import App
from bot.app.settings import Settings
from bot.messages import ConversationKey
from bot.recovery import Recovery
from engine.fake import FakeEngine
from tests.conftest import open_app
from tests.fakes import RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")
WORDS = " ".join(["word"] * 60)


async def until_sent(adapter: RecordingAdapter, within: float = 5.0) -> None:
    """Until the adapter was asked to post something (the first words of a streamed reply)."""
    async with asyncio.timeout(within):
        while not adapter.sent:  # noqa: ASYNC110 - a recording fake has no event to wait on
            await asyncio.sleep(0.01)


async def test_a_failed_turn_does_not_poison_the_conversation(app: App, adapter: RecordingAdapter) -> None:
    """Issue example: "hello", ~8,000 characters over the prompt budget, then three short ones."""
    await app.pipeline.handle(message("hello", "1"), adapter)
    await app.pipeline.handle(message("word " * 1600, "2"), adapter)  # 1,600 tokens > the 1,536 budget
    for n in range(3):
        await app.pipeline.handle(message(f"short {n}", f"s{n}"), adapter)

    texts = adapter.texts()
    assert texts[0] == "echo: hello"
    assert texts[1].startswith("Sorry, that message is too long for the model")
    assert texts[2:] == ["echo: short 0", "echo: short 1", "echo: short 2"]
    assert all("word word" not in m.text for m in await app.store.history(ROOM))


async def test_an_oversized_message_is_stored_and_refused(app: App, adapter: RecordingAdapter) -> None:
    limit = app.settings.max_message_chars
    await app.pipeline.handle(message("x" * (limit + 5), "1"), adapter)

    assert adapter.texts()[0].startswith("Sorry, that message is too long")
    assert await app.store.message_count() == 1, "an over-limit message is stored, not dropped"


async def test_shutdown_interrupts_a_reply_and_keeps_its_message_for_later(
    app: App, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    engine.delay = 0.05
    task = await app.pipeline.submit(message(f"tell me {WORDS}", "1"), adapter)
    assert task is not None
    await until_sent(adapter)

    await app.pipeline.drain(grace_s=0.05)

    shown = adapter.sent[0].text
    assert shown.endswith("[interrupted: I am restarting and will answer again when I am back]")
    [pending] = await app.store.pending(since=0)
    assert pending.text.startswith("tell me")
    assert [m.role for m in await app.store.history(ROOM)] == ["user"], "the cut reply never enters a prompt"


async def test_a_message_arriving_during_shutdown_is_stored_and_left_pending(
    app: App, adapter: RecordingAdapter
) -> None:
    await app.pipeline.drain(grace_s=0)

    assert await app.pipeline.submit(message("late", "9"), adapter) is None
    assert adapter.sent == []
    assert [p.text for p in await app.store.pending(since=0)] == ["late"]


async def test_after_a_restart_pending_messages_are_answered_once_in_order(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with open_app(settings, engine) as first:  # a crash: stored, never answered
        await first.pipeline.drain(grace_s=0)
        for n in range(3):  # three authors: one author's waiting messages would be merged
            queued = message(f"queued {n}", f"q{n}", author=f"u{n}", direct=False)
            await first.pipeline.submit(queued, adapter)

    async with open_app(settings, engine) as second:
        recovered = await second.recovery.run({"telegram": adapter})
        await second.pipeline.drain(grace_s=5)  # lets them finish
        again = await Recovery(second.store, second.pipeline, 300).run({"telegram": adapter})
        history = await second.store.history(ROOM)

    assert (recovered.resumed, recovered.skipped) == (3, 0)
    assert adapter.texts() == [f"echo: ⟦user-u{n}⟧: queued {n}" for n in range(3)]
    assert [m.text for m in history if m.role == "user"] == ["queued 0", "queued 1", "queued 2"]
    assert again.resumed == 0, "answered once"


async def test_old_pending_messages_are_skipped_and_never_enter_prompts(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    async with open_app(settings, engine) as app:
        await app.pipeline.drain(grace_s=0)
        await app.pipeline.submit(message("from long ago", "old"), adapter)
        later = Recovery(app.store, app.pipeline, 60, clock=lambda: time.time() + 3600)
        recovered = await later.run({"telegram": adapter})

        assert (recovered.resumed, recovered.skipped) == (0, 1)
        assert await app.store.history(ROOM) == []
        assert adapter.sent == []


async def test_a_reply_a_crash_left_half_shown_is_marked_before_the_new_answer(
    app: App, adapter: RecordingAdapter
) -> None:
    """kill -9 mid-stream: the platform shows part of a reply nobody will finish."""
    first = await adapter.send(ROOM, "the beginning of a long")
    second = await adapter.send(ROOM, "continued answer")
    message_id = await app.store.add_message(
        ROOM, "user", "tell me", author_name="ann", platform_message_id="42"
    )
    assert message_id is not None
    await app.store.note_shown(message_id, [first, second])

    await app.recovery.run({"telegram": adapter})
    await app.pipeline.drain(grace_s=5)

    assert adapter.sent[0].text == "[interrupted by a restart; answered again below]"
    assert adapter.sent[1].deleted
    assert adapter.texts()[-1] == "echo: ⟦ann⟧: tell me"
    assert await app.store.pending(since=0) == []


async def test_a_reply_a_crash_left_half_shown_for_a_message_too_old_to_answer_is_marked(
    app: App, adapter: RecordingAdapter
) -> None:
    first = await adapter.send(ROOM, "文件的开头")
    second = await adapter.send(ROOM, "continued")
    message_id = await app.store.add_message(ROOM, "user", "讲个故事", author_name="ann",
                                             platform_message_id="42")
    assert message_id is not None
    await app.store.note_shown(message_id, [first, second])

    later = Recovery(app.store, app.pipeline, 300, clock=lambda: time.time() + 3600)
    recovered = await later.run({"telegram": adapter})
    await app.pipeline.drain(grace_s=5)

    assert (recovered.resumed, recovered.skipped) == (0, 1)
    assert adapter.sent[0].text == "【因重启中断，时间已久不再回答，请重新提问】"
    assert adapter.sent[1].deleted
    assert len(adapter.sent) == 2, "not answered"


class SlowToMark(RecordingAdapter):
    """Marking a cut reply takes a while (a platform's pacing, a slow round trip)."""

    earlier: frozenset[str] = frozenset()

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        if message_id in self.earlier:
            await asyncio.sleep(0.3)
        await super().edit(key, message_id, text)


async def test_messages_left_unanswered_are_answered_in_order_however_long_marking_takes(app: App) -> None:
    adapter = SlowToMark()
    shown = await adapter.send(ROOM, "the beginning of")
    adapter.earlier = frozenset({shown})
    first = await app.store.add_message(ROOM, "user", "first", author_name="ann", platform_message_id="41")
    second = await app.store.add_message(ROOM, "user", "second", author_name="bob", author_id="bob",
                                         platform_message_id="42")
    assert first is not None and second is not None
    await app.store.note_shown(first, [shown])

    await app.recovery.run({"telegram": adapter})
    await app.pipeline.drain(grace_s=5)

    answers = [text for text in adapter.texts() if text.startswith("echo")]
    assert answers == ["echo: ⟦ann⟧: first", "echo: ⟦bob⟧: second"]


class BrokenEdits(RecordingAdapter):
    """An adapter whose edit of a message an earlier run sent fails in a way it should
    not (a bug, not a platform's refusal)."""

    earlier: frozenset[str] = frozenset()

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        if message_id in self.earlier:
            raise KeyError(message_id)
        await super().edit(key, message_id, text)


async def test_a_cut_reply_that_cannot_be_marked_does_not_stop_the_answer(app: App) -> None:
    adapter = BrokenEdits()
    shown = await adapter.send(ROOM, "the beginning of a long")
    adapter.earlier = frozenset({shown})
    message_id = await app.store.add_message(ROOM, "user", "tell me", author_name="ann",
                                             platform_message_id="42")
    assert message_id is not None
    await app.store.note_shown(message_id, [shown])

    await app.recovery.run({"telegram": adapter})
    await app.pipeline.drain(grace_s=5)

    assert adapter.texts()[-1] == "echo: ⟦ann⟧: tell me"
    assert await app.store.pending(since=0) == []


async def test_shown_parts_are_noted_while_a_reply_streams(
    app: App, engine: FakeEngine, adapter: RecordingAdapter
) -> None:
    engine.delay = 0.05
    task = await app.pipeline.submit(message(f"tell me {WORDS}", "1"), adapter)
    assert task is not None
    await until_sent(adapter)

    async with asyncio.timeout(5.0):  # the note has a connection of its own: not ordered with reads
        while not (pending := (await app.store.pending(since=0))[0]).shown:  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.01)
    assert pending.shown == (adapter.sent[0].message_id,)  # a crash now would find this
    assert not task.done()  # noted while the reply still streams
    await task


async def test_a_lone_surrogate_is_stored_as_a_replacement_and_answered(
    app: App, adapter: RecordingAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram's JSON can carry "\\ud800", which UTF-8 (and so SQLite) cannot store."""
    await app.pipeline.handle(message("half \ud800 a pair", "1"), adapter)

    [stored, _] = await app.store.history(ROOM)
    assert stored.text == "half \ufffd a pair"
    assert adapter.texts() == ["echo: half \ufffd a pair"]
    assert "lone surrogates" in caplog.text and "Traceback" not in caplog.text


async def test_leaving_the_app_cuts_a_reply_still_streaming_before_the_store_closes(
    settings: Settings, engine: FakeEngine, adapter: RecordingAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    """An embedder (a test, a benchmark) leaving the App mid-reply: the reply is cut and
    its message kept for the next start, as at shutdown; nothing runs on against a
    closed store (seen: "could not deliver an error reply", then "the store is not open")."""
    engine.delay = 0.05
    async with open_app(settings, engine) as app:
        task = await app.pipeline.submit(message(f"tell me {WORDS}", "1"), adapter)
        assert task is not None
        await until_sent(adapter)

    assert task.done()
    assert "interrupted" in adapter.texts()[-1]
    async with open_app(settings, engine) as again:
        [pending] = await again.store.pending(since=0)  # answered after the next start
    assert pending.text == f"tell me {WORDS}"
    assert "not open" not in caplog.text and "Traceback" not in caplog.text
