"""`/forget-me`: a person erases their own messages, the replies to them, their verdicts and
usage, on the platform they write from; in any chat, without being an admin."""

from __future__ import annotations

from bot.app.builder import App
from bot.messages import ConversationKey, Usage
from tests.fakes import RecordingAdapter, message

GROUP = ConversationKey("telegram", "-100")
DM = ConversationKey("telegram", "ann")


async def test_the_bare_command_only_explains(app: App, adapter: RecordingAdapter) -> None:
    await app.pipeline.handle(message("hello", "1", GROUP, author="ann", direct=False), adapter)

    reply = await app.commands.run(message("", "c1", GROUP, author="ann", direct=False), "forget-me")

    assert "/forget-me confirm" in reply and "telegram" in reply
    assert await app.store.message_count() == 2


async def test_confirmed_it_erases_the_author_everywhere_and_only_them(
    app: App, adapter: RecordingAdapter
) -> None:
    await app.pipeline.handle(message("hello from ann", "1", GROUP, author="ann", direct=False), adapter)
    await app.pipeline.handle(message("ann in private", "2", DM, author="ann"), adapter)
    await app.pipeline.handle(message("hello from bob", "3", GROUP, author="bob", direct=False), adapter)
    await app.store.add_usage([Usage("2026-11-22", "telegram", "-100", "ann", "Ann", messages=1)])

    reply = await app.commands.run(message("", "c1", GROUP, author="ann", direct=False), "forget-me",
                                   "confirm")

    assert reply.startswith("Done: erased 2 of your messages, 2 replies to them")
    left = [(m.author_id, m.role) for m in await app.store.history(GROUP)]
    assert left == [("bob", "user"), ("bot", "assistant")]
    assert await app.store.history(DM) == []
    assert "ann" not in [u.author_id for u in await app.store.usage("2000-01-01")]


async def test_it_answers_in_chinese_to_chinese(app: App) -> None:
    reply = await app.commands.run(message("", "c1", GROUP, author="ann", direct=False), "forget-me", "确认")
    assert "确认请发送 /forget-me confirm" in reply


async def test_it_is_listed_in_help_in_both_languages(app: App) -> None:
    assert "/forget-me [CONFIRM]" in app.commands.help("en")
    assert "删除 Hearth" in app.commands.help("zh")
