"""The pipeline on the fake engine and a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.core import Hearth
from bot.messages import ChatMessage, ConversationKey
from engine.fake import FakeEngine
from tests.fakes import BlockingGate, RecordingAdapter, message

ROOM = ConversationKey("telegram", "room")
OTHER = ConversationKey("telegram", "other")


async def test_reply_streams_by_editing_one_message(core: Hearth, adapter: RecordingAdapter) -> None:
    await core.handle(message("hello there friend", "1"), adapter)

    [sent] = adapter.sent
    assert sent.text == "echo: hello there friend"
    assert len(sent.texts) > 1, "expected a post followed by edits"
    assert all(sent.texts[-1].startswith(t) for t in sent.texts)


async def test_both_turns_and_their_verdicts_are_stored(core: Hearth, adapter: RecordingAdapter) -> None:
    await core.handle(message("hi", "1"), adapter)

    history = await core.store.history(ROOM)
    assert [(m.role, m.text) for m in history] == [("user", "hi"), ("assistant", "echo: hi")]
    assert history[1].reply_to == history[0].id
    assert history[1].platform_message_id == adapter.sent[0].message_id
    verdicts = await core.store.verdicts(ROOM)
    assert [(mid, d) for mid, d, _ in verdicts] == [(history[0].id, "input"), (history[1].id, "output")]


async def test_a_message_delivered_twice_is_answered_once(core: Hearth, adapter: RecordingAdapter) -> None:
    await asyncio.gather(core.handle(message("hi", "7"), adapter), core.handle(message("hi", "7"), adapter))
    await core.handle(message("hi", "7"), adapter)

    assert len(adapter.sent) == 1
    assert await core.store.message_count() == 2


async def test_engine_failure_is_a_polite_reply_and_keeps_the_message(
    core: Hearth, adapter: RecordingAdapter
) -> None:
    assert isinstance(core.engine, FakeEngine)
    core.engine.available = False

    await core.handle(message("are you there?", "1"), adapter)

    assert adapter.texts() == ["Sorry, the model is not available right now. Please try again in a moment."]
    assert [m.text for m in await core.store.history(ROOM)] == ["are you there?"]


async def test_errors_are_told_in_the_users_language(core: Hearth, adapter: RecordingAdapter) -> None:
    assert isinstance(core.engine, FakeEngine)
    core.engine.available = False

    await core.handle(message("你好，在吗？", "1"), adapter)

    assert adapter.texts() == ["抱歉，模型暂时不可用，请稍后再试。"]


async def test_an_oversized_message_is_refused_and_the_bot_goes_on(
    core: Hearth, adapter: RecordingAdapter
) -> None:
    limit = core.settings.max_message_chars
    await core.handle(message("x" * (limit + 1), "1"), adapter)
    await core.handle(message("short", "2"), adapter)

    assert adapter.texts()[0].startswith("Sorry, that message is too long")
    assert adapter.texts()[1] == "echo: short"


async def test_an_unexpected_error_becomes_a_generic_apology(core: Hearth, adapter: RecordingAdapter) -> None:
    def broken(messages: Sequence[ChatMessage]) -> list[str]:
        raise RuntimeError("boom")

    core.engine = FakeEngine(core.engine.spec, broken)
    await core.handle(message("hi", "1"), adapter)

    assert adapter.texts() == ["Sorry, something went wrong on my side. Please try again."]


async def test_flagged_input_never_reaches_the_engine(core: Hearth, adapter: RecordingAdapter) -> None:
    core.gate = BlockingGate("badword")
    assert isinstance(core.engine, FakeEngine)

    await core.handle(message("you badword", "1"), adapter)

    assert core.engine.prompts == []
    assert adapter.texts() == ["Sorry, I can't help with that."]
    [(_, direction, verdict)] = await core.store.verdicts(ROOM)
    assert direction == "input" and verdict.flagged


async def test_a_reply_that_turns_bad_is_replaced_unseen(core: Hearth, adapter: RecordingAdapter) -> None:
    core.gate = BlockingGate("badword")
    core.engine = FakeEngine(core.engine.spec, lambda m: ["fine ", "so ", "far ", "badword ", "more"])

    await core.handle(message("hi", "1"), adapter)

    [sent] = adapter.sent
    assert all("badword" not in text for text in sent.texts)
    assert sent.text == "Sorry, I can't help with that."
    reply = (await core.store.history(ROOM))[-1]
    assert reply.text == sent.text
    assert (await core.store.verdicts(ROOM))[-1][2].flagged


async def test_later_message_sees_the_earlier_reply(core: Hearth, adapter: RecordingAdapter) -> None:
    assert isinstance(core.engine, FakeEngine)
    slow = FakeEngine(core.engine.spec, delay=0.01)
    core.engine = slow

    await asyncio.gather(
        core.handle(message("first", "1", direct=False), adapter),
        core.handle(message("second", "2", direct=False), adapter),
    )

    second_prompt = [m.content for m in slow.prompts[1]]
    assert second_prompt[1:] == ["user-u1: first", "echo: user-u1: first", "user-u1: second"]
    assert adapter.texts() == ["echo: user-u1: first", "echo: user-u1: second"]


async def test_conversations_are_answered_concurrently(core: Hearth, adapter: RecordingAdapter) -> None:
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

    core.engine = WaitingEngine(core.engine.spec, script)
    await asyncio.wait_for(
        asyncio.gather(
            core.handle(message("room", "1", ROOM), adapter),
            core.handle(message("other", "2", OTHER), adapter),
        ),
        timeout=10,
    )
    assert sorted(adapter.texts()) == ["ok", "ok"]


async def test_group_messages_carry_the_author_name(core: Hearth, adapter: RecordingAdapter) -> None:
    assert isinstance(core.engine, FakeEngine)
    await core.handle(message("hi", "1", direct=False), adapter)
    await core.handle(message("hi", "2", ConversationKey("telegram", "dm"), direct=True), adapter)

    assert core.engine.prompts[0][-1].content == "user-u1: hi"
    assert core.engine.prompts[1][-1].content == "hi"


async def test_system_prompt_is_first_and_identical_across_turns(
    core: Hearth, adapter: RecordingAdapter
) -> None:
    assert isinstance(core.engine, FakeEngine)
    for n in range(3):
        await core.handle(message(f"turn {n}", str(n)), adapter)

    prompts = core.engine.prompts
    assert all(p[0].role == "system" for p in prompts)
    assert len({p[0].content for p in prompts}) == 1
    assert prompts[2][: len(prompts[1])] == prompts[1], "earlier turns must never be rewritten"


async def test_long_history_is_trimmed_by_whole_turns(core: Hearth, adapter: RecordingAdapter) -> None:
    assert isinstance(core.engine, FakeEngine)
    words = " ".join(["word"] * 100)
    for n in range(30):
        await core.handle(message(f"{n} {words}", str(n), direct=False), adapter)

    budget = core.prompt_budget()
    last = core.engine.prompts[-1]
    assert await core.engine.count_tokens(last) <= budget
    assert last[0].role == "system"
    assert [m.role for m in last[1:]] == ["user", "assistant"] * ((len(last) - 2) // 2) + ["user"]
    assert last[-1].content.startswith("user-u1: 29 ")
    assert len(last) < 2 * 30


async def test_a_flagged_message_never_reaches_later_prompts(core: Hearth, adapter: RecordingAdapter) -> None:
    core.gate = BlockingGate("badword")
    assert isinstance(core.engine, FakeEngine)

    await core.handle(message("you badword", "1"), adapter)
    await core.handle(message("hello", "2"), adapter)

    [prompt] = core.engine.prompts
    assert all("badword" not in m.content for m in prompt)
