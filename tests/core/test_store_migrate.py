"""`move_channel`, run against every store: a chat whose id the platform changed (a
Telegram group upgraded to a supergroup) keeps everything Hearth knew about it."""

from __future__ import annotations

import time

import pytest

from bot.messages import ConversationKey, Verdict, WordRule
from bot.moderation.gate import scope_of
from bot.store import Store

pytestmark = pytest.mark.asyncio

OLD, NEW = "-4001", "-1004001"
GROUP = ConversationKey("telegram", OLD)
SUPERGROUP = ConversationKey("telegram", NEW)
TOPIC = ConversationKey("telegram", OLD, "7")
NEW_TOPIC = ConversationKey("telegram", NEW, "7")
NEIGHBOUR = ConversationKey("telegram", OLD + "0")  # its id starts like the old one's
SAME_ID_ELSEWHERE = ConversationKey("discord", OLD)


async def say(store: Store, key: ConversationKey, text: str, platform_id: str | None = None) -> int:
    new_id = await store.add_message(key, "user", text, platform_message_id=platform_id)
    assert new_id is not None
    return new_id


async def texts(store: Store, key: ConversationKey) -> list[str]:
    return [m.text for m in await store.history(key)]


async def move(store: Store) -> bool:
    return await store.move_channel("telegram", OLD, NEW)


# --- what moves ----------------------------------------------------------------------


async def test_the_history_moves_to_the_new_id(store: Store) -> None:
    await say(store, GROUP, "hello")
    await store.add_message(GROUP, "assistant", "hi")

    assert await move(store) is True

    assert await texts(store, SUPERGROUP) == ["hello", "hi"]
    assert await texts(store, GROUP) == []


async def test_every_thread_of_the_channel_moves(store: Store) -> None:
    await say(store, GROUP, "in the chat")
    await say(store, TOPIC, "in a topic")

    await move(store)

    assert await texts(store, SUPERGROUP) == ["in the chat"]
    assert await texts(store, NEW_TOPIC) == ["in a topic"]


async def test_the_context_floor_moves(store: Store) -> None:
    await say(store, GROUP, "forgotten")
    kept = await say(store, GROUP, "kept")
    await store.set_context_floor(GROUP, kept)

    await move(store)

    assert await texts(store, SUPERGROUP) == ["kept"]


async def test_persona_and_flags_move(store: Store) -> None:
    await store.set_channel_persona(GROUP, "a pirate")
    await store.set_channel_flag(TOPIC, "answer-all", "1")  # flags belong to the channel

    assert await move(store) is True

    assert await store.get_channel_persona(SUPERGROUP) == "a pirate"
    assert await store.get_channel_flag(SUPERGROUP, "answer-all") == "1"
    assert await store.get_channel_persona(GROUP) is None
    assert await store.get_channel_flag(GROUP, "answer-all") is None


async def test_moderation_words_move_to_the_new_scope_in_their_order(store: Store) -> None:
    await store.add_word(WordRule(scope_of(GROUP), "zorblax", "block"))
    await store.add_word(WordRule("global", "between", "block"))
    await store.add_word(WordRule(scope_of(GROUP), "oolong", "allow"))

    assert await move(store) is True

    assert [(w.scope, w.word) for w in await store.words()] == [
        (scope_of(SUPERGROUP), "zorblax"), ("global", "between"), (scope_of(SUPERGROUP), "oolong"),
    ]


async def test_verdicts_move_with_their_messages(store: Store) -> None:
    message = await say(store, GROUP, "judged")
    await store.add_verdict(GROUP, message, "input", Verdict(False))

    await move(store)

    assert await store.verdicts(SUPERGROUP) == [(message, "input", Verdict(False))]
    assert await store.verdicts(GROUP) == []


async def test_a_pending_message_is_answered_in_the_new_chat(store: Store) -> None:
    before = time.time() - 1
    message = await say(store, GROUP, "still waiting")

    await move(store)

    assert [(p.id, p.key) for p in await store.pending(before)] == [(message, SUPERGROUP)]


async def test_only_that_channel_of_that_platform_moves(store: Store) -> None:
    for key in (NEIGHBOUR, SAME_ID_ELSEWHERE):
        await say(store, key, f"stays in {key}")
        await store.set_channel_persona(key, f"persona of {key}")
        await store.add_word(WordRule(scope_of(key), "zorblax", "block"))

    assert await move(store) is False

    for key in (NEIGHBOUR, SAME_ID_ELSEWHERE):
        assert await texts(store, key) == [f"stays in {key}"]
        assert await store.get_channel_persona(key) == f"persona of {key}"
    assert {w.scope for w in await store.words()} == {scope_of(NEIGHBOUR), scope_of(SAME_ID_ELSEWHERE)}


async def test_message_ids_and_the_count_stay(store: Store) -> None:
    ids = [await say(store, GROUP, "one"), await say(store, GROUP, "two")]

    await move(store)

    assert [m.id for m in await store.history(SUPERGROUP)] == ids
    assert await store.message_count() == 2


# --- platform ids ------------------------------------------------------------------------


async def test_moved_platform_ids_are_qualified_by_the_old_channel(store: Store) -> None:
    await say(store, GROUP, "old", platform_id="5")

    await move(store)

    assert [m.platform_message_id for m in await store.history(SUPERGROUP)] == [f"{OLD}/5"]


async def test_the_new_chat_may_reuse_a_platform_id_the_old_one_had(store: Store) -> None:
    """A supergroup numbers its messages afresh: its message 5 is not the group's."""
    await say(store, GROUP, "the group's fifth", platform_id="5")
    await move(store)

    assert await store.add_message(SUPERGROUP, "user", "the supergroup's fifth", platform_message_id="5")
    assert await texts(store, SUPERGROUP) == ["the group's fifth", "the supergroup's fifth"]


# --- merging into what the new id has --------------------------------------------------------


async def test_messages_the_new_chat_had_first_are_merged_in_order(store: Store) -> None:
    await say(store, GROUP, "before", platform_id="5")
    await say(store, SUPERGROUP, "after", platform_id="5")

    assert await move(store) is True
    await say(store, SUPERGROUP, "later")

    assert await texts(store, SUPERGROUP) == ["before", "after", "later"]
    assert await texts(store, GROUP) == []


async def test_a_merged_conversation_keeps_the_higher_context_floor(store: Store) -> None:
    await say(store, GROUP, "hidden")
    floor = await say(store, GROUP, "shown")
    await store.set_context_floor(GROUP, floor)
    await say(store, SUPERGROUP, "new")

    await move(store)

    assert await texts(store, SUPERGROUP) == ["shown", "new"]


async def test_merged_verdicts_keep_their_messages(store: Store) -> None:
    old = await say(store, GROUP, "old")
    await store.add_verdict(GROUP, old, "input", Verdict(False))
    new = await say(store, SUPERGROUP, "new")
    await store.add_verdict(SUPERGROUP, new, "input", Verdict(False))

    await move(store)

    assert [v[0] for v in await store.verdicts(SUPERGROUP)] == [old, new]


async def test_where_both_chats_have_a_setting_the_new_chats_is_kept(store: Store) -> None:
    await store.set_channel_persona(GROUP, "the old persona")
    await store.set_channel_flag(GROUP, "answer-all", "old")
    await store.add_word(WordRule(scope_of(GROUP), "zorblax", "block"))
    await store.set_channel_persona(SUPERGROUP, "the new persona")
    await store.set_channel_flag(SUPERGROUP, "answer-all", "new")
    await store.add_word(WordRule(scope_of(SUPERGROUP), "zorblax", "allow"))

    await move(store)

    assert await store.get_channel_persona(SUPERGROUP) == "the new persona"
    assert await store.get_channel_flag(SUPERGROUP, "answer-all") == "new"
    assert [(w.scope, w.word, w.action) for w in await store.words()] == [
        (scope_of(SUPERGROUP), "zorblax", "allow"),
    ]


# --- idempotence and afterwards ------------------------------------------------------------


async def test_moving_again_is_a_no_op(store: Store) -> None:
    await say(store, GROUP, "hello", platform_id="1")
    await store.set_channel_persona(GROUP, "a pirate")
    await store.add_word(WordRule(scope_of(GROUP), "zorblax", "block"))
    await move(store)
    before = (await store.history(SUPERGROUP), await store.words())

    assert await move(store) is False

    assert (await store.history(SUPERGROUP), await store.words()) == before
    assert await store.get_channel_persona(SUPERGROUP) == "a pirate"


async def test_moving_a_channel_to_itself_changes_nothing(store: Store) -> None:
    await say(store, GROUP, "hello", platform_id="1")

    assert await store.move_channel("telegram", OLD, OLD) is False

    assert [m.platform_message_id for m in await store.history(GROUP)] == ["1"]


async def test_a_message_stored_under_the_old_id_afterwards_goes_to_a_fresh_conversation(
    store: Store,
) -> None:
    """A reply still being written when the chat moved is recorded under the old id; a
    second move then merges it (and the store never uses a conversation row it removed)."""
    question = await say(store, GROUP, "question")
    await say(store, SUPERGROUP, "meanwhile")
    await move(store)

    await store.add_message(GROUP, "assistant", "answer", reply_to=question)
    assert await texts(store, GROUP) == ["answer"]
    assert await move(store) is True

    assert await texts(store, SUPERGROUP) == ["question", "answer", "meanwhile"]
    assert await texts(store, GROUP) == []
