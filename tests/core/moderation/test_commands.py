"""`/moderation`: admins' words, stored per chat or globally, live without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot import i18n
from bot.app.builder import App
from bot.app.settings import Settings
from bot.messages import ConversationKey, IncomingMessage, WordRule
from bot.moderation import GateConfig, LayeredGate
from bot.store import Store
from engine.fake import FakeEngine
from tests.conftest import open_app
from tests.core.moderation import ROOM
from tests.fakes import RecordingAdapter, message

OTHER = ConversationKey("telegram", "other")


def admin(text: str = "", key: ConversationKey = ROOM) -> IncomingMessage:
    return message(text, "a1", key, author="mod", admin=True, direct=False)


@pytest.fixture
async def gated(settings: Settings, engine: FakeEngine) -> AsyncIterator[tuple[App, LayeredGate]]:
    """The app with a layered gate the test can also ask directly."""
    made: list[LayeredGate] = []

    def make(store: Store) -> LayeredGate:
        made.append(LayeredGate(GateConfig(), store))
        return made[-1]

    async with open_app(settings, engine, gate=make) as app:
        yield app, made[0]


async def test_a_blocked_word_is_stored_for_this_chat(app: App) -> None:
    reply = await app.commands.run(admin(), "moderation", "block pineapple pizza hate")

    assert "pineapple pizza" in reply
    assert await app.store.words() == [WordRule("telegram:room", "pineapple pizza", "block", "hate")]


async def test_a_word_blocked_at_run_time_takes_effect_at_once(
    gated: tuple[App, LayeredGate], adapter: RecordingAdapter
) -> None:
    app, gate = gated
    assert not (await gate.check("pineapple", "input", ROOM)).flagged

    await app.commands.run(admin(), "moderation", "block pineapple")
    await app.pipeline.handle(message("I love pineapple", "1"), adapter)

    assert adapter.texts() == ["Sorry, I can't help with that."]


async def test_removing_a_word_lifts_the_block(gated: tuple[App, LayeredGate]) -> None:
    app, gate = gated
    await app.commands.run(admin(), "moderation", "block pineapple")
    assert (await gate.check("pineapple", "input", ROOM)).flagged

    await app.commands.run(admin(), "moderation", "remove pineapple")

    assert not (await gate.check("pineapple", "input", ROOM)).flagged


async def test_an_allowed_word_passes_the_shipped_lists(gated: tuple[App, LayeredGate]) -> None:
    app, gate = gated
    await app.commands.run(admin(), "moderation", "allow tmd")

    assert not (await gate.check("tmd 又卡了", "input", ROOM)).flagged


async def test_list_shows_this_chats_and_global_words(app: App) -> None:
    await app.store.add_word(WordRule("telegram:room", "pineapple", "block", "hate"))
    await app.store.add_word(WordRule("global", "durian", "block", "harassment"))
    await app.store.add_word(WordRule("telegram:other", "kiwi", "block", "harassment"))

    reply = await app.commands.run(admin(), "moderation", "list")

    assert "pineapple" in reply and "durian" in reply and "[global]" in reply and "kiwi" not in reply


async def test_members_cannot_change_words(app: App) -> None:
    member = message("", "m1", ROOM, author="someone", direct=False)

    reply = await app.commands.run(member, "moderation", "allow sb")

    assert reply.startswith("Sorry, only admins")
    assert await app.store.words() == []


async def test_a_chat_admin_cannot_set_global_words(app: App) -> None:
    reply = await app.commands.run(admin(), "moderation", "global block pineapple")

    assert reply == i18n.text("not_operator", "en", action="/moderation")
    assert await app.store.words() == []


async def test_an_operator_sets_global_words(app: App) -> None:
    boss = message("", "b1", OTHER, author="4242", direct=False)  # telegram:4242 is in HEARTH_ADMIN_IDS

    await app.commands.run(boss, "moderation", "global block pineapple violence")

    assert await app.store.words() == [WordRule("global", "pineapple", "block", "violence")]


async def test_unknown_verbs_get_the_usage(app: App) -> None:
    assert (await app.commands.run(admin(), "moderation", "frobnicate")).startswith("Usage")
