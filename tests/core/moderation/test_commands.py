"""`/moderation`: admins' words, stored per chat or globally, live without a restart."""

from __future__ import annotations

from bot.core import Hearth
from bot.messages import ConversationKey, IncomingMessage, WordRule
from bot.moderation import GateConfig, LayeredGate
from tests.fakes import RecordingAdapter, message
from tests.moderation import ROOM

OTHER = ConversationKey("telegram", "other")


def admin(text: str = "", key: ConversationKey = ROOM) -> IncomingMessage:
    return message(text, "a1", key, author="mod", admin=True, direct=False)


def with_gate(core: Hearth) -> LayeredGate:
    gate = LayeredGate(GateConfig(), core.store)
    core.gate = gate
    return gate


async def test_a_blocked_word_is_stored_for_this_chat(core: Hearth) -> None:
    reply = await core.command(admin(), "moderation", "block pineapple pizza hate")

    assert "pineapple pizza" in reply
    assert await core.store.words() == [WordRule("telegram:room", "pineapple pizza", "block", "hate")]


async def test_a_word_blocked_at_run_time_takes_effect_at_once(
    core: Hearth, adapter: RecordingAdapter
) -> None:
    gate = with_gate(core)
    assert not (await gate.check("pineapple", "input", ROOM)).flagged

    await core.command(admin(), "moderation", "block pineapple")
    await core.handle(message("I love pineapple", "1"), adapter)

    assert adapter.texts() == ["Sorry, I can't help with that."]


async def test_removing_a_word_lifts_the_block(core: Hearth) -> None:
    gate = with_gate(core)
    await core.command(admin(), "moderation", "block pineapple")
    assert (await gate.check("pineapple", "input", ROOM)).flagged

    await core.command(admin(), "moderation", "remove pineapple")

    assert not (await gate.check("pineapple", "input", ROOM)).flagged


async def test_an_allowed_word_passes_the_shipped_lists(core: Hearth) -> None:
    gate = with_gate(core)
    await core.command(admin(), "moderation", "allow tmd")

    assert not (await gate.check("tmd 又卡了", "input", ROOM)).flagged


async def test_list_shows_this_chats_and_global_words(core: Hearth) -> None:
    await core.store.add_word(WordRule("telegram:room", "pineapple", "block", "hate"))
    await core.store.add_word(WordRule("global", "durian", "block", "harassment"))
    await core.store.add_word(WordRule("telegram:other", "kiwi", "block", "harassment"))

    reply = await core.command(admin(), "moderation", "list")

    assert "pineapple" in reply and "durian" in reply and "[global]" in reply and "kiwi" not in reply


async def test_members_cannot_change_words(core: Hearth) -> None:
    member = message("", "m1", ROOM, author="someone", direct=False)

    reply = await core.command(member, "moderation", "allow sb")

    assert reply.startswith("Sorry, only admins")
    assert await core.store.words() == []


async def test_a_chat_admin_cannot_set_global_words(core: Hearth) -> None:
    reply = await core.command(admin(), "moderation", "global block pineapple")

    assert reply.startswith("Sorry, only admins")
    assert await core.store.words() == []


async def test_an_operator_sets_global_words(core: Hearth) -> None:
    boss = message("", "b1", OTHER, author="boss", direct=False)  # telegram:boss is in HEARTH_ADMIN_IDS

    await core.command(boss, "moderation", "global block pineapple violence")

    assert await core.store.words() == [WordRule("global", "pineapple", "block", "violence")]


async def test_unknown_verbs_get_the_usage(core: Hearth) -> None:
    assert (await core.command(admin(), "moderation", "frobnicate")).startswith("Usage")
