"""The Telegram adapter end to end: the real python-telegram-bot client against a fake
Bot API on 127.0.0.1, Hearth wired by its composition root on the fake engine."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter

from adapters.telegram import Pacing, TelegramAdapter, TelegramConfig
from adapters.telegram.commands import for_telegram, telegram_name
from adapters.telegram.pacing import PacedRequests
from bot import i18n
from bot.app.builder import App
from bot.app.platforms import build_platforms
from bot.errors import DeliveryError, PlatformAuthError
from bot.moderation.gate import scope_of
from bot.serving import ACTIVE_MODEL
from bot.splitting import utf16_len
from tests.adapters.telegram.fake_telegram import ANONYMOUS_ADMIN, FakeTelegram
from tests.adapters.telegram.harness import (
    ALICE,
    BLOCKED,
    BOB,
    DM,
    DM_BOB,
    DM_LISTED,
    FORUM,
    GROUP,
    LISTED,
    MENTION,
    POLL_S,
    WAIT_S,
    HeldEngine,
    adapter_for,
    answer_to,
    history,
    key,
    serving,
)

# --- private chats and streaming --------------------------------------------------


async def test_a_private_message_gets_a_streamed_reply(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    engine.delay = 0.01
    fake.user_says(DM, ALICE, "hello there my friend")

    reply = await fake.wait_for_reply(DM, "echo: hello there my friend")

    assert [m.message_id for m in fake.bot_messages(DM)] == [reply.message_id]
    assert len(reply.texts) > 1, "expected sendMessage, then editMessageText"
    assert all(reply.text.startswith(t) for t in reply.texts)


async def test_typing_shows_while_the_reply_is_generated(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    engine.delay = 0.2  # four words: 0.8 s; typing repeats every 0.2 s
    fake.user_says(DM, ALICE, "one two three")

    await fake.wait_for_reply(DM, "echo: one two three")

    actions = fake.calls_to("sendChatAction", DM)
    assert len(actions) >= 2
    assert {c.params["action"] for c in actions} == {"typing"}


async def test_messages_in_one_chat_are_answered_in_arrival_order(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    # The first reply is held until all three are stored: the author's two messages that
    # wait behind it are merged, and one reply answers both (bot.pipeline.backlog).
    engine.hold("first", lambda: history(app.store, key(DM), 3))
    for text in ("first", "second", "third"):
        fake.user_says(DM, ALICE, text)

    await fake.wait_for_reply(DM, "echo: second\n\nthird")

    assert await history(app.store, key(DM), 5) == [
        "first", "echo: first", "second", "third", "echo: second\n\nthird",
    ]
    assert [m.text for m in fake.bot_messages(DM)] == ["echo: first", "echo: second\n\nthird"]


# --- groups and forum topics --------------------------------------------------------


async def test_a_group_message_that_does_not_address_the_bot_gets_no_reply(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, ALICE, "just chatting among ourselves")
    fake.user_says(GROUP, BOB, f"{MENTION} hi")  # answered: everything before it was seen

    await fake.wait_for_reply(GROUP, "echo: ⟦Bob⟧: hi")

    assert [m.text for m in fake.bot_messages(GROUP)] == ["echo: ⟦Bob⟧: hi"]
    assert await history(app.store, key(GROUP), 2) == ["hi", "echo: ⟦Bob⟧: hi"]


async def test_a_mention_in_a_group_is_answered_without_the_mention(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, ALICE, f"hey {MENTION}, what is oolong?")

    await fake.wait_for_reply(GROUP, "oolong?")

    assert (await history(app.store, key(GROUP), 2))[0] == "hey what is oolong?"


async def test_a_reply_in_a_group_quotes_the_message_it_answers(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    asked = fake.user_says(GROUP, ALICE, f"{MENTION} which one?")

    reply = await fake.wait_for_reply(GROUP, "which one?")

    assert reply.reply_to == asked


async def test_a_reply_to_the_bots_message_in_a_group_is_answered(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, ALICE, f"{MENTION} hello")
    first = await fake.wait_for_reply(GROUP, "hello")

    fake.user_says(GROUP, BOB, "and you?", reply_to=first.message_id)

    await fake.wait_for_reply(GROUP, "and you?")


async def test_forum_topics_keep_separate_histories(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    cats = fake.open_topic(FORUM, ALICE, "Cats")
    dogs = fake.open_topic(FORUM, BOB, "Dogs")
    fake.user_says(FORUM, ALICE, f"{MENTION} meow", thread=cats)
    fake.user_says(FORUM, BOB, f"{MENTION} woof", thread=dogs)

    await fake.wait_for_reply(FORUM, "meow")
    await fake.wait_for_reply(FORUM, "woof")

    assert await history(app.store, key(FORUM, cats), 2) == ["meow", "echo: ⟦Alice⟧: meow"]
    assert await history(app.store, key(FORUM, dogs), 2) == ["woof", "echo: ⟦Bob⟧: woof"]
    assert [m.text for m in fake.bot_messages(FORUM, thread=cats)] == ["echo: ⟦Alice⟧: meow"]
    assert [m.text for m in fake.bot_messages(FORUM, thread=dogs)] == ["echo: ⟦Bob⟧: woof"]


async def test_a_topic_the_bot_opened_does_not_count_as_a_reply_to_it(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    topic = fake.open_topic(FORUM, fake.bot, "Announcements")
    fake.user_says(FORUM, ALICE, "talking to people here", thread=topic)
    fake.user_says(FORUM, ALICE, f"{MENTION} and to you", thread=topic)

    await fake.wait_for_reply(FORUM, "and to you")

    assert [m.text for m in fake.bot_messages(FORUM)] == ["echo: ⟦Alice⟧: and to you"]


# --- long replies ------------------------------------------------------------------


async def test_a_reply_over_4096_utf16_units_arrives_in_several_messages(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    paragraph = "你好世界😀" * 100  # 500 characters, 600 UTF-16 code units
    paragraphs = [f"{i} {paragraph}" for i in range(20)]
    engine.script = lambda _: [p + "\n\n" for p in paragraphs]
    fake.user_says(DM, ALICE, "tell me everything")

    await fake.wait_for_reply(DM, "19 ")

    parts = [m.text for m in fake.bot_messages(DM)]
    assert len(parts) >= 3
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert "".join(parts).replace("\n", "") == "".join(paragraphs)


# --- commands: the table, rendered for Telegram ----------------------------------------


async def test_the_menu_lists_every_command_of_the_table_in_english_and_chinese(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    for language_code, lang in (("", "en"), ("zh", "zh")):
        menu = {c["command"]: c["description"] for c in fake.commands[language_code]}

        assert list(menu) == ["start", *(telegram_name(c.name) for c in app.commands)]
        assert all(menu[telegram_name(c.name)] == c.help.get(lang) for c in app.commands)
    assert {"moderation", "hearth_channel", "help"} <= set(menu)


async def test_every_command_of_the_table_is_parsed_and_answered(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    listing = for_telegram(app.commands.help("en"), app.commands)  # what an unknown name would get

    for command in app.commands:
        asked = fake.user_says(GROUP, ALICE, f"/{telegram_name(command.name)}")
        reply = await answer_to(fake, GROUP, asked)

        assert reply.text != listing, f"/{command.name} was not recognised"
        assert "I don't know that command" not in reply.text, f"/{command.name} was not recognised"
        assert ("Hi, I'm" in reply.text) == (command.name == "help"), command.name
        assert "/hearth-channel" not in reply.text  # Telegram users type /hearth_channel


async def test_start_answers_with_bilingual_help(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "/start")

    reply = await fake.wait_for_reply(DM, "/model")

    assert MENTION in reply.text and "私聊" in reply.text and "private chat" in reply.text
    for lang in ("en", "zh"):
        assert for_telegram(app.commands.help(lang), app.commands) in reply.text


async def test_hearth_channel_on_answers_every_group_message_and_off_stops_it(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, "/hearth_channel on")
    await fake.wait_for_reply(GROUP, "answer every message")
    fake.user_says(GROUP, BOB, "no mention here")
    await fake.wait_for_reply(GROUP, "echo: ⟦Bob⟧: no mention here")

    fake.user_says(GROUP, ALICE, "/hearth_channel@HearthTestBot off")
    await fake.wait_for_reply(GROUP, "only when mentioned")
    fake.user_says(GROUP, BOB, "quiet again")
    fake.user_says(GROUP, BOB, f"{MENTION} still there?")  # answered after "quiet again" was seen

    await fake.wait_for_reply(GROUP, "still there?")
    assert not any("quiet again" in m.text for m in fake.bot_messages(GROUP))


async def test_a_group_that_answers_everything_is_answered_in_arrival_order(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    # A conversation the store knows already: SqliteStore can still reorder the very
    # first messages of a new conversation (its conversation row is created on the side).
    fake.user_says(GROUP, ALICE, f"{MENTION} hello")
    await fake.wait_for_reply(GROUP, "echo: ⟦Alice⟧: hello")
    fake.user_says(GROUP, ALICE, "/hearth_channel on")
    await fake.wait_for_reply(GROUP, "answer every message")
    engine.hold("first", lambda: history(app.store, key(GROUP), 5))  # until all three are stored

    for text in ("first", f"{MENTION} second", "third"):  # only the mention needs no look at the mode
        fake.user_says(GROUP, BOB, text)

    await fake.wait_for_reply(GROUP, "echo: ⟦Bob⟧: second\n\n⟦Bob⟧: third")  # the two that waited, merged
    assert (await history(app.store, key(GROUP), 7))[2:] == [
        "first", "echo: ⟦Bob⟧: first", "second", "third", "echo: ⟦Bob⟧: second\n\n⟦Bob⟧: third",
    ]


async def test_hearth_channel_by_a_member_is_refused(fake: FakeTelegram, telegram: TelegramAdapter) -> None:
    fake.user_says(GROUP, BOB, "/hearth_channel on")
    await fake.wait_for_reply(GROUP, "only admins can do that (/hearth_channel)")
    fake.user_says(GROUP, BOB, "nobody called you")
    fake.user_says(GROUP, BOB, f"{MENTION} but now")

    await fake.wait_for_reply(GROUP, "but now")
    assert not any("nobody called you" in m.text for m in fake.bot_messages(GROUP))


async def test_moderation_block_by_a_group_admin_stores_the_word_and_refuses_it(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, f"/moderation block {BLOCKED}")
    await fake.wait_for_reply(GROUP, f"Blocking {BLOCKED!r}")

    assert [(w.scope, w.word, w.action) for w in await app.store.words()] == [
        (scope_of(key(GROUP)), BLOCKED, "block"),
    ]

    fake.user_says(GROUP, BOB, f"{MENTION} please say {BLOCKED}")
    await fake.wait_for_reply(GROUP, i18n.text("refusal", "en"))

    assert engine.prompts == [], "a refused message never reaches the model"
    assert not any(BLOCKED in m.text for m in fake.bot_messages(GROUP) if m.text.startswith("echo"))


@pytest.mark.parametrize(("word", "lang"), [(BLOCKED, "en"), ("坏话", "zh")])
async def test_moderation_block_by_a_plain_member_is_refused_and_stores_nothing(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter, word: str, lang: str
) -> None:
    fake.set_member(GROUP, BOB, "member")
    asked = fake.user_says(GROUP, BOB, f"/moderation block {word}")

    reply = await answer_to(fake, GROUP, asked)

    assert reply.text == i18n.text("not_admin", lang, action="/moderation")
    assert await app.store.words() == []


async def test_a_chat_admins_global_model_is_refused_and_nothing_changes(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "creator")
    for args in ("smollm2-135m", "glm4-9b-gptq", "demo-awq global"):
        asked = fake.user_says(GROUP, ALICE, f"/model {args}")
        assert (await answer_to(fake, GROUP, asked)).text == i18n.text("not_operator", "en", action="/model")

    assert engine.spec.name == "demo"
    assert await app.store.get_setting(ACTIVE_MODEL) is None
    fake.user_says(DM_BOB, BOB, "who answers?")
    await fake.wait_for_reply(DM_BOB, "echo: who answers?")
    assert engine.spec.name == "demo", "other chats are still answered by the operator's model"


async def test_a_chat_admin_pins_their_own_chat_only_to_a_served_model(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, "/model demo channel")
    await fake.wait_for_reply(GROUP, "This channel is answered by demo.")
    fake.user_says(GROUP, ALICE, "/model smollm2-135m channel")

    await fake.wait_for_reply(GROUP, "Unknown model smollm2-135m")

    assert engine.spec.name == "demo", "a pin never loads, downloads or installs anything"


async def test_model_by_a_member_is_refused_and_switches_nothing(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, BOB, "member")
    fake.user_says(GROUP, BOB, "/model@HearthTestBot demo-awq")

    await fake.wait_for_reply(GROUP, "only Hearth's operators")

    assert engine.spec.name == "demo"


async def test_the_chat_creator_is_an_admin(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, BOB, "creator")
    fake.user_says(GROUP, BOB, "/persona set You are {bot_name}, a gardener.")

    await fake.wait_for_reply(GROUP, "Persona set for this channel.")


async def test_an_anonymous_admin_posting_as_the_group_is_an_admin(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, ANONYMOUS_ADMIN, "/persona set You are {bot_name}, a gardener.", sender_chat=GROUP)

    await fake.wait_for_reply(GROUP, "Persona set for this channel.")

    assert fake.calls_to("getChatMember") == []


async def test_admin_status_is_asked_of_telegram_once_per_minute(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, "/persona reset")
    await fake.wait_for_reply(GROUP, "Persona reset")
    fake.user_says(GROUP, ALICE, "/hearth_channel on")

    await fake.wait_for_reply(GROUP, "I will answer every message")

    assert len(fake.calls_to("getChatMember")) == 1


async def test_a_listed_admin_may_switch_models_in_a_private_chat(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM_LISTED, LISTED, "/model demo-awq")

    await fake.wait_for_reply(DM_LISTED, "Now serving demo-awq")


async def test_anyone_may_reset_their_own_private_chat(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "remember me")
    await fake.wait_for_reply(DM, "echo: remember me")
    fake.user_says(DM, ALICE, "/reset")

    await fake.wait_for_reply(DM, "Conversation forgotten (2 messages)")

    assert await history(app.store, key(DM)) == []


# --- failures --------------------------------------------------------------------------


async def test_a_429_is_waited_out_and_the_reply_arrives_once(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.fail("sendMessage", 429, retry_after=1)
    fake.user_says(DM, ALICE, "busy day")

    await fake.wait_for_reply(DM, "echo: busy day")

    refused, sent = fake.calls_to("sendMessage", DM)
    assert (refused.status, sent.status) == (429, 200)
    assert sent.at - refused.at >= 1.0
    assert len(fake.bot_messages(DM)) == 1


async def test_a_network_error_is_retried_and_the_reply_arrives_once(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.fail("sendMessage", 502, "Bad Gateway")
    fake.user_says(DM, ALICE, "still there?")

    await fake.wait_for_reply(DM, "echo: still there?")

    assert [c.status for c in fake.calls_to("sendMessage", DM)] == [502, 200]
    assert len(fake.bot_messages(DM)) == 1


async def test_a_reply_telegram_refuses_becomes_a_short_error_and_the_message_is_kept(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.fail("sendMessage", 400, "Bad Request: chat is being migrated")
    fake.user_says(DM, ALICE, "hello?")

    await fake.wait_for_reply(DM, "Sorry, something went wrong on my side.")

    assert await app.store.message_count() == 1, "the message is kept"
    assert await history(app.store, key(DM)) == [], "a failed turn never enters a later prompt"


async def test_an_edit_that_changes_nothing_is_never_sent(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "hi")  # lets the fake know the chat
    await fake.wait_for_reply(DM, "echo: hi")
    message_id = await telegram.send(key(DM), "same text")

    await telegram.edit(key(DM), message_id, "same text")

    edits = [c for c in fake.calls_to("editMessageText", DM) if c.params["message_id"] == int(message_id)]
    assert edits == []


async def test_the_fake_rejects_identical_edits_and_overlong_texts(fake: FakeTelegram) -> None:
    fake.user_says(DM, ALICE, "hi")
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        sent = await bot.send_message(DM.id, "text")
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("text", chat_id=DM.id, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(DM.id, "😀" * 2049)  # 4,098 UTF-16 code units

    assert [e.method for e in fake.errors] == ["editMessageText", "sendMessage"]
    fake.errors.clear()


# --- deleting, and notices to operators ---------------------------------------------------


async def test_delete_removes_a_sent_message(fake: FakeTelegram, telegram: TelegramAdapter) -> None:
    fake.user_says(DM, ALICE, "hi")  # lets the fake know the chat
    await fake.wait_for_reply(DM, "echo: hi")
    message_id = await telegram.send(key(DM), "to be taken back")

    await telegram.delete(key(DM), message_id)

    assert [m.text for m in fake.bot_messages(DM)] == ["echo: hi"]
    assert [(m.message_id, m.text) for m in fake.deleted] == [(int(message_id), "to be taken back")]


async def test_a_delete_telegram_refuses_raises_a_delivery_error(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "hi")
    await fake.wait_for_reply(DM, "echo: hi")
    message_id = await telegram.send(key(DM), "once")
    await telegram.delete(key(DM), message_id)

    with pytest.raises(DeliveryError) as caught:
        await telegram.delete(key(DM), message_id)

    assert (caught.value.platform, caught.value.status) == ("telegram", 400)
    assert "not found" in caught.value.reason
    assert [e.method for e in fake.errors] == ["deleteMessage"]
    fake.errors.clear()


async def test_notify_writes_to_an_operator_who_has_a_private_chat_with_the_bot(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM_LISTED, LISTED, "/status")  # Telegram lets a bot write only to who wrote first
    await fake.wait_for_reply(DM_LISTED, "model:")

    await telegram.notify(str(LISTED.id), "the engine stopped")

    assert fake.bot_messages(DM_LISTED)[-1].text == "the engine stopped"


@pytest.mark.parametrize("user_id", ["999", "@owner"])
async def test_notify_to_someone_telegram_cannot_reach_raises_a_delivery_error(
    fake: FakeTelegram, telegram: TelegramAdapter, user_id: str
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await telegram.notify(user_id, "hello?")

    assert (caught.value.platform, caught.value.status) == ("telegram", 400)
    fake.errors.clear()


# --- concurrency and shutdown -------------------------------------------------------------


async def test_a_slow_reply_in_one_chat_does_not_delay_another_chat(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    async def bobs_reply_sent() -> None:
        await fake.wait_for_reply(DM_BOB, "echo: fast please", within=WAIT_S)

    # Handled one at a time, Alice's reply would wait for Bob's, which would wait for hers.
    engine.hold("slow", bobs_reply_sent)
    fake.user_says(DM, ALICE, "slow please")
    fake.user_says(DM_BOB, BOB, "fast please")

    await fake.wait_for_reply(DM, "echo: slow please", within=2 * WAIT_S)


async def test_stop_ends_serving_while_a_reply_is_still_generating(
    app: App, engine: HeldEngine, config: TelegramConfig, fake: FakeTelegram
) -> None:
    never = asyncio.Event()
    engine.hold("forever", never.wait)
    async with serving(adapter_for(app, config), fake):
        fake.user_says(DM, ALICE, "take forever")
        await fake.wait_for(lambda: bool(fake.calls_to("sendChatAction", DM)))
    # Leaving `serving` waited (bounded) for run() to return.

    assert await history(app.store, key(DM)) == ["take forever"]


async def test_stop_confirms_what_was_taken_and_ends_run(
    app: App, config: TelegramConfig, fake: FakeTelegram
) -> None:
    adapter = adapter_for(app, config)
    task = asyncio.create_task(adapter.run())
    fake.user_says(DM, ALICE, "hello")
    await fake.wait_for_reply(DM, "echo: hello", WAIT_S)

    await adapter.stop()  # the runner calls stop(), then waits for run() to end
    await asyncio.wait_for(task, WAIT_S)

    # The last getUpdates (timeout 0) confirms the offset past the message it took.
    last = fake.calls_to("getUpdates")[-1]
    assert last.params["timeout"] == 0 and int(last.params["offset"]) > 1


# --- wiring ----------------------------------------------------------------------------------


async def test_the_composition_root_builds_the_telegram_adapter_from_the_settings(app: App) -> None:
    platforms = build_platforms(app, io.StringIO(), io.StringIO())

    assert len(platforms) == 1 and isinstance(platforms[0], TelegramAdapter)


# --- webhook mode ---------------------------------------------------------------------------


async def until_listening(port: int) -> None:
    """PTB calls setWebhook before its server listens: wait (bounded) for the port."""
    for _ in range(int(WAIT_S / POLL_S)):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(POLL_S)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"nothing listens on port {port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def webhook_config(config: TelegramConfig) -> TelegramConfig:
    return dataclasses.replace(
        config, webhook_url="https://hearth.example/tg/hook", webhook_port=free_port(),
        webhook_secret=SecretStr("hook-secret"),
    )


async def post_update(config: TelegramConfig, update: dict[str, object], secret: str) -> int:
    await until_listening(config.webhook_port)
    url = f"http://127.0.0.1:{config.webhook_port}/tg/hook"
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with aiohttp.ClientSession() as session, session.post(url, json=update, headers=headers) as reply:
        return reply.status


async def test_webhook_mode_answers_an_update_posted_with_the_secret(
    app: App, webhook_config: TelegramConfig, fake: FakeTelegram
) -> None:
    async with serving(adapter_for(app, webhook_config), fake, ready="setWebhook"):
        assert fake.webhook is not None
        assert (fake.webhook["url"], fake.webhook["secret_token"]) == ("https://hearth.example/tg/hook",
                                                                       "hook-secret")
        update = fake.make_update(DM, ALICE, "via webhook")

        assert await post_update(webhook_config, update, "hook-secret") == 200
        await fake.wait_for_reply(DM, "echo: via webhook")

    assert fake.calls_to("getUpdates") == []


async def test_webhook_mode_refuses_a_post_without_the_secret(
    app: App, webhook_config: TelegramConfig, fake: FakeTelegram
) -> None:
    async with serving(adapter_for(app, webhook_config), fake, ready="setWebhook"):
        update = fake.make_update(DM, ALICE, "forged")

        assert await post_update(webhook_config, update, "guess") == 403

    assert await history(app.store, key(DM)) == []


# --- secrets ------------------------------------------------------------------------------------


async def test_the_token_never_reaches_the_logs_even_at_debug(
    app: App, config: TelegramConfig, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(adapter_for(app, config), fake):
        fake.user_says(DM, ALICE, "psst")
        await fake.wait_for_reply(DM, "echo: psst")

    assert caplog.records, "expected debug logging to be captured"
    assert fake.token not in caplog.text
    assert fake.token.split(":")[1] not in caplog.text


async def test_a_rejected_token_stops_run_with_an_error_that_does_not_quote_it(
    app: App, config: TelegramConfig, fake: FakeTelegram
) -> None:
    wrong = dataclasses.replace(config, token=SecretStr("4242:WRONG-secret-xyz"))

    with pytest.raises(PlatformAuthError) as caught:
        await asyncio.wait_for(adapter_for(app, wrong).run(), WAIT_S)

    assert "WRONG-secret-xyz" not in str(caught.value)
    assert caught.value.__suppress_context__


# --- pacing (the rate limiter on its own) -----------------------------------------------------


def recorder(results: list[Any]) -> tuple[list[float], Callable[[], Coroutine[Any, Any, Any]]]:
    """A Bot API call stand-in: raises or returns `results` in turn, noting when it ran."""
    times: list[float] = []

    async def call() -> Any:
        times.append(asyncio.get_running_loop().time())
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    return times, call


async def test_messages_to_one_chat_are_spaced_by_the_chat_interval() -> None:
    pacer = PacedRequests(Pacing(chat_interval=0.1, overall_per_second=0))
    times, call = recorder([True, True, True])

    for _ in range(3):
        await pacer.process_request(call, (), {}, "sendMessage", {"chat_id": 5}, None)

    assert all(later - earlier >= 0.099 for earlier, later in itertools.pairwise(times))


async def test_a_group_gets_its_burst_then_waits() -> None:
    pacer = PacedRequests(Pacing(chat_interval=0, group_messages=2, group_window=0.2, overall_per_second=0))
    times, call = recorder([True, True, True])

    for _ in range(3):
        await pacer.process_request(call, (), {}, "editMessageText", {"chat_id": -100}, None)

    assert times[2] - times[0] >= 0.099


async def test_retry_after_is_waited_as_telegram_asked() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    pacer = PacedRequests(Pacing(), sleep=sleep)
    _, call = recorder([RetryAfter(7), {"sent": True}])

    assert await pacer.process_request(call, (), {}, "sendMessage", {}, None) == {"sent": True}
    assert waits == [pytest.approx(7.1)]


async def test_network_errors_are_retried_a_bounded_number_of_times() -> None:
    async def sleep(seconds: float) -> None:
        pass

    pacer = PacedRequests(Pacing(max_retries=2), sleep=sleep)
    times, call = recorder([NetworkError("down")] * 3)

    with pytest.raises(NetworkError):
        await pacer.process_request(call, (), {}, "sendMessage", {}, None)
    assert len(times) == 3


async def test_a_bad_request_is_not_retried() -> None:
    pacer = PacedRequests(Pacing())
    times, call = recorder([BadRequest("Bad Request: message is too long")])

    with pytest.raises(BadRequest):
        await pacer.process_request(call, (), {}, "sendMessage", {}, None)
    assert len(times) == 1
