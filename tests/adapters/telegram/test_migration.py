"""A group upgraded to a supergroup (a new chat id): its history, persona, channel mode,
moderation words and admins follow it, whichever way Telegram tells, and a reply being
written meanwhile reaches the supergroup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.telegram import TelegramAdapter, TelegramConfig
from bot import i18n
from bot.app.builder import App
from bot.app.gate import build_gate
from bot.app.settings import Settings
from bot.moderation.gate import LayeredGate, scope_of
from bot.store import Store
from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram
from tests.adapters.telegram.harness import (
    ALICE,
    BLOCKED,
    BOB,
    FAST,
    MENTION,
    HeldEngine,
    history,
    key,
    serving,
)
from tests.conftest import open_app

GROUP = Chat(-4001, "group", "Tea Room")
SUPERGROUP = Chat(-1004001, "supergroup", "Tea Room")
PERSONA = "You are a tea sommelier."


class StoreAndGate:
    """What the composition root hands the adapter: the store moves the chat's rows, and
    the moderation gate re-reads the admin words (it keeps them in memory)."""

    def __init__(self, store: Store, gate: LayeredGate) -> None:
        self._store = store
        self._gate = gate

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool:
        moved = await self._store.move_channel(platform, old_channel, new_channel)
        self._gate.words_changed()
        return moved


@pytest.fixture
async def wired(settings: Settings, engine: HeldEngine) -> AsyncIterator[tuple[App, LayeredGate]]:
    """Hearth with a layered gate this module holds, to wire into the adapter's moves."""
    gates: list[LayeredGate] = []

    def gate(store: Store) -> LayeredGate:
        gates.append(build_gate(settings, store))
        return gates[0]

    async with open_app(settings, engine, gate=gate) as built:
        yield built, gates[0]


@pytest.fixture
def app(wired: tuple[App, LayeredGate]) -> App:
    """Overrides the shared fixture: the app `wired` built."""
    return wired[0]


@pytest.fixture
async def telegram(
    wired: tuple[App, LayeredGate], config: TelegramConfig, fake: FakeTelegram
) -> AsyncIterator[TelegramAdapter]:
    app, gate = wired
    moves = StoreAndGate(app.store, gate)
    adapter = TelegramAdapter(config, app.pipeline, app.commands, app.modes, FAST, moves=moves)
    async with serving(adapter, fake) as running:
        yield running


async def talk_in_the_group(fake: FakeTelegram) -> None:
    """An admin sets a persona, then Bob and Hearth talk."""
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, f"/persona set {PERSONA}")
    await fake.wait_for_reply(GROUP, "Persona set")
    fake.user_says(GROUP, BOB, f"{MENTION} remember oolong")
    await fake.wait_for_reply(GROUP, "echo: ⟦Bob⟧: remember oolong")


async def a_slow_reply_in_the_group(app: App, engine: HeldEngine, fake: FakeTelegram) -> asyncio.Event:
    """After `talk_in_the_group`, Bob asks for a reply that is written until the event is set."""
    await talk_in_the_group(fake)
    released = asyncio.Event()
    engine.hold("slowly", released.wait)
    fake.user_says(GROUP, BOB, f"{MENTION} slowly")
    await history(app.store, key(GROUP), 3)
    return released


def refused_calls_to_the_group(fake: FakeTelegram) -> list[str]:
    return [c.method for c in fake.calls if c.params.get("chat_id") == GROUP.id and c.status == 400]


async def test_the_supergroup_keeps_the_groups_history_and_persona(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    await talk_in_the_group(fake)

    fake.migrate(GROUP, SUPERGROUP, ALICE)
    fake.user_says(SUPERGROUP, BOB, f"{MENTION} what did I say?")
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: what did I say?")

    prompt = engine.prompts[-1]
    assert PERSONA in prompt[0].content
    assert [m.content for m in prompt[1:]] == [
        "⟦Bob⟧: remember oolong", "echo: ⟦Bob⟧: remember oolong", "⟦Bob⟧: what did I say?",
    ]
    assert await history(app.store, key(GROUP)) == []
    assert refused_calls_to_the_group(fake) == []  # nothing was sent to the old id


async def test_channel_mode_moderation_words_and_admins_follow_the_supergroup(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, "/hearth_channel on")
    await fake.wait_for_reply(GROUP, "answer every message")
    fake.user_says(GROUP, ALICE, f"/moderation block {BLOCKED}")
    await fake.wait_for_reply(GROUP, f"Blocking {BLOCKED!r}")

    fake.migrate(GROUP, SUPERGROUP, ALICE)
    fake.set_member(SUPERGROUP, ALICE, "administrator")  # Telegram keeps a group's admins
    fake.user_says(SUPERGROUP, BOB, "no mention needed here")
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: no mention needed here")
    fake.user_says(SUPERGROUP, BOB, f"{MENTION} please say {BLOCKED}")
    await fake.wait_for_reply(SUPERGROUP, i18n.text("refusal", "en"))
    fake.user_says(SUPERGROUP, ALICE, "/persona reset")
    await fake.wait_for_reply(SUPERGROUP, "Persona reset")

    assert not any(BLOCKED in m[-1].content for m in engine.prompts)
    assert len(fake.calls_to("getChatMember")) == 1  # asked in the group, remembered for the supergroup


@pytest.mark.parametrize("announce", [("to", "from"), ("from", "to"), ("to",), ("from",)])
async def test_either_service_message_moves_the_chat_and_both_move_it_once(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter, announce: tuple[str, ...]
) -> None:
    await talk_in_the_group(fake)

    fake.migrate(GROUP, SUPERGROUP, ALICE, announce=announce)
    fake.user_says(SUPERGROUP, BOB, f"{MENTION} still here?")
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: still here?")

    assert await history(app.store, key(SUPERGROUP), 4) == [
        "remember oolong", "echo: ⟦Bob⟧: remember oolong", "still here?", "echo: ⟦Bob⟧: still here?",
    ]
    assert await app.store.get_channel_persona(key(SUPERGROUP)) == PERSONA


async def test_messages_the_supergroup_had_before_the_news_are_merged(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    await talk_in_the_group(fake)
    fake.migrate(GROUP, SUPERGROUP, ALICE, announce=())
    fake.user_says(SUPERGROUP, BOB, f"{MENTION} first here")
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: first here")

    fake.migrate(GROUP, SUPERGROUP, ALICE, announce=("from",))  # the news arrives late
    fake.user_says(SUPERGROUP, BOB, f"{MENTION} and now?")
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: and now?")

    assert await history(app.store, key(SUPERGROUP), 6) == [
        "remember oolong", "echo: ⟦Bob⟧: remember oolong", "first here", "echo: ⟦Bob⟧: first here",
        "and now?", "echo: ⟦Bob⟧: and now?",
    ]


async def test_a_reply_refused_as_upgraded_is_sent_to_the_supergroup_and_stored_there(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    released = await a_slow_reply_in_the_group(app, engine, fake)

    fake.migrate(GROUP, SUPERGROUP, ALICE, announce=())  # Telegram's news is not here yet
    released.set()
    reply = await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: slowly")

    assert refused_calls_to_the_group(fake).count("sendMessage") == 1  # then never the old id again
    assert reply.reply_to is None  # the question's id is the old group's: nothing to quote
    assert await history(app.store, key(SUPERGROUP), 4) == [
        "remember oolong", "echo: ⟦Bob⟧: remember oolong", "slowly", "echo: ⟦Bob⟧: slowly",
    ]
    assert await app.store.get_channel_persona(key(SUPERGROUP)) == PERSONA


async def test_a_reply_being_written_during_the_upgrade_follows_it(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    released = await a_slow_reply_in_the_group(app, engine, fake)

    fake.migrate(GROUP, SUPERGROUP, ALICE)
    await history(app.store, key(SUPERGROUP), 3)  # the service messages were handled
    released.set()
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: slowly")

    assert await history(app.store, key(SUPERGROUP), 4) == [
        "remember oolong", "echo: ⟦Bob⟧: remember oolong", "slowly", "echo: ⟦Bob⟧: slowly",
    ]
    # A "typing…" tick may reach the old id before the news does (as on Telegram); refused
    # once, it is followed. The reply itself never goes to the old id.
    assert refused_calls_to_the_group(fake) in ([], ["sendChatAction"])
    assert await history(app.store, key(GROUP)) == []


async def test_typing_follows_an_upgrade_not_heard_of_yet(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    released = await a_slow_reply_in_the_group(app, engine, fake)

    fake.migrate(GROUP, SUPERGROUP, ALICE, announce=())  # Telegram's news is not here yet

    def typing_in_the_supergroup() -> bool:
        return any(c.method == "sendChatAction" and c.params.get("chat_id") == SUPERGROUP.id
                   for c in fake.calls)
    await fake.wait_for(typing_in_the_supergroup)  # not after the reply: while it is written
    assert refused_calls_to_the_group(fake) == ["sendChatAction"]  # once, then followed
    assert await history(app.store, key(SUPERGROUP), 3) == [
        "remember oolong", "echo: ⟦Bob⟧: remember oolong", "slowly",
    ]
    released.set()
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: slowly")
    assert refused_calls_to_the_group(fake) == ["sendChatAction"]


async def test_moderation_words_are_stored_under_the_supergroups_scope(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, f"/moderation block {BLOCKED}")
    await fake.wait_for_reply(GROUP, f"Blocking {BLOCKED!r}")

    fake.migrate(GROUP, SUPERGROUP, ALICE)
    fake.user_says(SUPERGROUP, BOB, f"{MENTION} hi")
    await fake.wait_for_reply(SUPERGROUP, "echo: ⟦Bob⟧: hi")

    assert [(w.scope, w.word) for w in await app.store.words()] == [(scope_of(key(SUPERGROUP)), BLOCKED)]
