"""The owner's part of the storage contract, run against every implementation: exporting
messages page by page (`OwnerData.export_messages`), erasing one person
(`OwnerData.forget_user`), and named leases (`Leases`)."""

from __future__ import annotations

import asyncio

import pytest

from bot.messages import ConversationKey, Usage, Verdict
from bot.store import Forgotten, Store

pytestmark = pytest.mark.asyncio

ROOM = ConversationKey("telegram", "-100")
TOPIC = ConversationKey("telegram", "-100", "7")
DM = ConversationKey("telegram", "555")
ELSEWHERE = ConversationKey("discord", "-100")
ANN, BOB = "555", "666"


async def say(store: Store, key: ConversationKey, author: str, text: str) -> int:
    new_id = await store.add_message(key, "user", text, author_id=author, author_name=f"name-{author}",
                                     status="answered")
    assert new_id is not None
    return new_id


async def answer(store: Store, key: ConversationKey, question: int, text: str) -> int:
    new_id = await store.add_message(key, "assistant", text, author_id="bot", reply_to=question)
    assert new_id is not None
    return new_id


async def everything(store: Store, **where: str) -> list[tuple[ConversationKey, str]]:
    """Every exported message as (conversation, text), paged two at a time."""
    found, after = [], 0
    while page := await store.export_messages(after, 2, **where):
        found += [(key, m.text) for key, m in page]
        after = page[-1][1].id
    return found


# Export.


async def test_export_pages_through_every_message_by_id(store: Store) -> None:
    for n, key in enumerate([ROOM, TOPIC, DM, ELSEWHERE, ROOM]):
        await say(store, key, ANN, f"m{n}")

    assert await everything(store) == [
        (ROOM, "m0"), (TOPIC, "m1"), (DM, "m2"), (ELSEWHERE, "m3"), (ROOM, "m4")]


async def test_export_keeps_every_field_and_status(store: Store) -> None:
    question = await say(store, ROOM, ANN, "hello")
    await store.add_message(ROOM, "assistant", "hi", author_id="bot", reply_to=question, reply_tokens=3,
                            platform_message_id="p9", status="interrupted")

    [(_, asked), (key, replied)] = await store.export_messages(0, 10)

    assert (asked.author_id, asked.author_name, asked.status) == (ANN, f"name-{ANN}", "answered")
    assert key == ROOM
    assert (replied.role, replied.reply_to, replied.reply_tokens, replied.platform_message_id,
            replied.status) == ("assistant", question, 3, "p9", "interrupted")


async def test_export_narrows_to_a_platform_a_channel_or_a_conversation(store: Store) -> None:
    for n, key in enumerate([ROOM, TOPIC, DM, ELSEWHERE]):
        await say(store, key, ANN, f"m{n}")

    assert [t for _, t in await everything(store, platform="telegram")] == ["m0", "m1", "m2"]
    assert [t for _, t in await everything(store, platform="telegram", channel="-100")] == ["m0", "m1"]
    assert [t for _, t in await everything(store, platform="telegram", channel="-100", thread="")] == ["m0"]
    assert [t for _, t in await everything(store, platform="discord", channel="-100")] == ["m3"]


async def test_export_of_nothing(store: Store) -> None:
    await say(store, ROOM, ANN, "hello")
    assert await store.export_messages(0, 0) == []
    assert await store.export_messages(10**9, 10) == []


# Forgetting one person.


async def test_forget_user_erases_their_messages_and_the_replies_everywhere(store: Store) -> None:
    asked_in_room = await say(store, ROOM, ANN, "ann in the room")
    await answer(store, ROOM, asked_in_room, "to ann")
    bob_asked = await say(store, ROOM, BOB, "bob in the room")
    await answer(store, ROOM, bob_asked, "to bob")
    await answer(store, DM, await say(store, DM, ANN, "ann in private"), "to ann, privately")
    await say(store, TOPIC, ANN, "ann in a topic")
    await say(store, ELSEWHERE, ANN, "the same id on discord")

    forgotten = await store.forget_user("telegram", ANN)

    assert forgotten == Forgotten(messages=3, replies=2, verdicts=0, usage=0)
    assert [t for _, t in await everything(store)] == ["bob in the room", "to bob", "the same id on discord"]
    assert [m.text for m in await store.history(ROOM)] == ["bob in the room", "to bob"]


async def test_forget_user_erases_the_verdicts_about_them_and_their_usage(store: Store) -> None:
    question = await say(store, ROOM, ANN, "ann")
    reply = await answer(store, ROOM, question, "to ann")
    bob = await say(store, ROOM, BOB, "bob")
    for message_id, direction in [(question, "input"), (reply, "output"), (bob, "input")]:
        await store.add_verdict(ROOM, message_id, direction, Verdict(False, "words"))
    await store.add_usage([Usage("2026-11-20", "telegram", "-100", ANN, "Ann", messages=1),
                           Usage("2026-11-21", "telegram", "555", ANN, "Ann", messages=2),
                           Usage("2026-11-21", "telegram", "-100", BOB, "Bob", messages=1),
                           Usage("2026-11-21", "discord", "-100", ANN, "Ann", messages=1)])

    forgotten = await store.forget_user("telegram", ANN)

    assert forgotten == Forgotten(messages=1, replies=1, verdicts=2, usage=2)
    assert [message_id for message_id, _, _ in await store.verdicts(ROOM)] == [bob]
    assert [(u.platform, u.author_id) for u in await store.usage("2026-01-01")] == [
        ("discord", ANN), ("telegram", BOB)]


async def test_forget_user_of_a_stranger_changes_nothing(store: Store) -> None:
    await say(store, ROOM, BOB, "bob")
    assert await store.forget_user("telegram", ANN) == Forgotten()
    assert [t for _, t in await everything(store)] == ["bob"]


async def test_a_forgotten_person_may_talk_again(store: Store) -> None:
    await say(store, DM, ANN, "before")
    await store.forget_user("telegram", ANN)
    await say(store, DM, ANN, "after")
    assert [m.text for m in await store.history(DM)] == ["after"]


# Leases.


async def test_a_free_lease_is_taken_and_then_refused_to_another(store: Store) -> None:
    first = await store.claim_lease("hearth", "host-a:1", 30.0)
    second = await store.claim_lease("hearth", "host-b:2", 30.0)
    assert first.holder == second.holder == "host-a:1"
    assert second.expires_at == first.expires_at


async def test_the_holder_renews_its_lease(store: Store) -> None:
    first = await store.claim_lease("hearth", "host-a:1", 30.0)
    await asyncio.sleep(0.01)
    renewed = await store.claim_lease("hearth", "host-a:1", 30.0)
    assert renewed.holder == "host-a:1" and renewed.expires_at > first.expires_at


async def test_an_expired_lease_is_taken_over(store: Store) -> None:
    await store.claim_lease("hearth", "host-a:1", 0.01)
    await asyncio.sleep(0.05)
    assert (await store.claim_lease("hearth", "host-b:2", 30.0)).holder == "host-b:2"


async def test_a_lease_is_taken_from_a_holder_known_to_be_dead(store: Store) -> None:
    await store.claim_lease("hearth", "host-a:1", 30.0)
    assert (await store.claim_lease("hearth", "host-a:2", 30.0, replacing="host-a:3")).holder == "host-a:1"
    assert (await store.claim_lease("hearth", "host-a:2", 30.0, replacing="host-a:1")).holder == "host-a:2"


async def test_only_the_holder_releases_a_lease(store: Store) -> None:
    await store.claim_lease("hearth", "host-a:1", 30.0)
    await store.release_lease("hearth", "host-b:2")
    assert (await store.claim_lease("hearth", "host-b:2", 30.0)).holder == "host-a:1"
    await store.release_lease("hearth", "host-a:1")
    assert (await store.claim_lease("hearth", "host-b:2", 30.0)).holder == "host-b:2"


async def test_leases_are_named_apart(store: Store) -> None:
    await store.claim_lease("hearth", "host-a:1", 30.0)
    assert (await store.claim_lease("hearth-2", "host-b:2", 30.0)).holder == "host-b:2"
