"""What Hearth reads from a Telegram message, end to end (the real python-telegram-bot against
the fake Bot API): captions like text, media it cannot see, the message replied to, commands
for other bots, and replies cut only between grapheme clusters."""

from __future__ import annotations

import asyncio

import regex

from adapters.telegram import TelegramAdapter
from bot import i18n
from bot.app.builder import App
from tests.adapters.telegram.fake_telegram import FakeTelegram, User
from tests.adapters.telegram.harness import (
    ALICE,
    BOB,
    DM,
    GROUP,
    LISTED,
    MENTION,
    HeldEngine,
    answer_to,
    history,
    key,
)

CHINESE_ALICE = User(ALICE.id, "Alice", "alice", language_code="zh-hans")
OTHER_BOTS_COMMANDS = ("/start@QuotLyBot", "/status@OtherBot", "/ban@ModBot 12345")
QUIET_S = 0.3  # long enough for an answer to a message that should get none to show up
GRAPHEMES = regex.compile(r"\X")
# A reply whose clusters a cut used to split: ZWJ families, flags, skin tones, e + U+0301.
CLUSTERS = ["👨‍👩‍👧‍👦", "🇨🇳", "👍🏽", "e\u0301", "🏳️‍🌈", "x"]


def last_prompt(engine: HeldEngine) -> str:
    return engine.prompts[-1][-1].content


# --- captions and media -----------------------------------------------------------------


async def test_a_captioned_photo_that_mentions_the_bot_in_a_group_is_answered(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    mid = fake.user_says(GROUP, ALICE, f"{MENTION} what is this?", media="photo")

    reply = await fake.wait_for_reply(GROUP, "what is this?")

    assert reply.reply_to == mid
    prompt = last_prompt(engine)
    assert prompt.startswith("⟦Alice⟧: [photo attached: you cannot see it")
    assert prompt.endswith("what is this?")


async def test_a_captioned_photo_in_a_private_chat_is_answered(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "is this a cat?", media="photo")

    await fake.wait_for_reply(DM, "is this a cat?")

    assert last_prompt(engine) == "[photo attached: you cannot see it, only this text]\nis this a cat?"


async def test_a_photo_without_a_caption_gets_a_notice_and_the_model_is_not_called(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "", media="photo")

    await fake.wait_for_reply(DM, i18n.text("media_unseen", "en"))

    assert engine.prompts == []
    assert await app.store.history(key(DM)) == []  # kept as `unseen`: never part of a prompt


async def test_the_notice_is_in_the_users_language(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, CHINESE_ALICE, "", media="voice")

    await fake.wait_for_reply(DM, i18n.text("media_unseen", "zh"))


async def test_a_sticker_replying_to_the_bot_in_a_group_gets_the_notice(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    mid = fake.user_says(GROUP, ALICE, f"{MENTION} hello")
    answer = await answer_to(fake, GROUP, mid)

    sticker = fake.user_says(GROUP, ALICE, "", media="sticker", reply_to=answer.message_id)

    assert (await answer_to(fake, GROUP, sticker)).text == i18n.text("media_unseen", "en")


async def test_a_photo_nobody_addressed_to_the_bot_in_a_group_is_ignored(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, ALICE, "", media="photo")
    fake.user_says(GROUP, ALICE, "holiday pictures", media="photo")
    await asyncio.sleep(QUIET_S)

    assert fake.bot_messages(GROUP) == []
    assert await app.store.history(key(GROUP)) == []


# --- the message replied to -------------------------------------------------------------


async def test_the_message_replied_to_is_part_of_the_turn(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    original = fake.user_says(GROUP, BOB, "Bonjour à tous, la réunion est déplacée à jeudi.")
    fake.user_says(GROUP, ALICE, f"{MENTION} translate this into English", reply_to=original)

    await fake.wait_for_reply(GROUP, "translate this into English")

    assert last_prompt(engine) == (
        "⟦Alice⟧: > Bob wrote:\n> Bonjour à tous, la réunion est déplacée à jeudi.\n"
        "translate this into English"
    )


async def test_the_part_the_user_quoted_is_what_is_given(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    original = fake.user_says(GROUP, BOB, "first line\nthe line that matters\nlast line")
    fake.user_says(GROUP, ALICE, f"{MENTION} is this true?", reply_to=original, quote="the line that matters")

    await fake.wait_for_reply(GROUP, "is this true?")

    assert "> the line that matters\nis this true?" in last_prompt(engine)
    assert "first line" not in last_prompt(engine)


async def test_a_long_message_replied_to_is_bounded(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    original = fake.user_says(GROUP, BOB, "word " * 2000)
    fake.user_says(GROUP, ALICE, f"{MENTION} summarise", reply_to=original)
    await fake.wait_for_reply(GROUP, "summarise")

    question = (await history(app.store, key(GROUP), 2))[0]

    assert question.startswith("> Bob wrote:\n> word word")
    assert question.endswith("…\nsummarise")
    assert len(question) < 500


async def test_a_caption_of_the_message_replied_to_is_read(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    original = fake.user_says(GROUP, BOB, "our new office", media="photo")
    fake.user_says(GROUP, ALICE, f"{MENTION} where is it?", reply_to=original)

    await fake.wait_for_reply(GROUP, "where is it?")

    assert "> Bob wrote:\n> [photo] our new office\nwhere is it?" in last_prompt(engine)


async def test_a_reply_to_the_bots_own_message_does_not_quote_it_again(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    first = fake.user_says(GROUP, ALICE, f"{MENTION} hello")
    answer = await answer_to(fake, GROUP, first)
    fake.user_says(GROUP, ALICE, "and then?", reply_to=answer.message_id)

    await fake.wait_for_reply(GROUP, "and then?")

    assert last_prompt(engine) == "⟦Alice⟧: and then?"


# --- commands for other bots ------------------------------------------------------------


async def test_commands_for_other_bots_are_never_answered_or_stored_even_answering_everything(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, "/hearth_channel on")
    await fake.wait_for_reply(GROUP, "every message")
    for command in OTHER_BOTS_COMMANDS:
        fake.user_says(GROUP, BOB, command)
    fake.user_says(GROUP, BOB, "and this one is for everyone")

    await fake.wait_for_reply(GROUP, "for everyone")

    assert await history(app.store, key(GROUP), 2) == [
        "and this one is for everyone", "echo: ⟦Bob⟧: and this one is for everyone"]
    assert [p[-1].content for p in engine.prompts] == ["⟦Bob⟧: and this one is for everyone"]


async def test_a_command_for_another_bot_in_a_private_chat_is_not_answered(
    app: App, engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(DM, ALICE, "/start@QuotLyBot")
    fake.user_says(DM, ALICE, "hello")

    await fake.wait_for_reply(DM, "echo: hello")

    assert [m.text for m in fake.bot_messages(DM)] == ["echo: hello"]
    assert await history(app.store, key(DM), 2) == ["hello", "echo: hello"]


async def test_a_command_for_this_bot_by_name_still_works(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, LISTED, "/status@HearthTestBot")

    await fake.wait_for_reply(GROUP, "uptime")


# --- grapheme clusters --------------------------------------------------------------------


def boundaries(text: str) -> set[int]:
    return {m.end() for m in GRAPHEMES.finditer(text)} | {0}


async def test_a_long_reply_is_cut_only_between_grapheme_clusters(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    body = "a" + "".join(CLUSTERS) * 700  # no spaces: every cut is a hard one
    engine.script = lambda messages: [body]
    fake.user_says(DM, ALICE, "clusters please")

    await fake.wait_for(lambda: "".join(m.text for m in fake.bot_messages(DM)) == body, 10.0)

    parts = [m.text for m in fake.bot_messages(DM)]
    assert len(parts) > 2
    assert sum(len(GRAPHEMES.findall(p)) for p in parts) == len(GRAPHEMES.findall(body))
    assert all(p.count("🇳🇨") == 0 for p in parts)  # no flag re-paired after a split one


async def test_a_streamed_edit_never_shows_half_a_cluster(
    engine: HeldEngine, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    pieces = ["Flags: ", "🇨", "🇳", " family: ", "👨\u200d", "👩\u200d", "👧", " ok"]
    engine.script = lambda messages: pieces
    engine.delay = 0.07  # longer than the edit interval: an edit after every piece
    fake.user_says(DM, ALICE, "stream please")

    reply = await fake.wait_for_reply(DM, "ok")

    final = "".join(pieces)
    assert reply.text == final
    assert len(reply.texts) > 3
    assert all(final.startswith(t) and len(t) in boundaries(final) for t in reply.texts)
