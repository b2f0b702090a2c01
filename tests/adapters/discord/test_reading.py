"""What Hearth reads from a Discord message, end to end (the real discord.py against the fake
Discord): words with attachments, attachments alone, the message replied to, commands typed for
other bots, and replies cut only between grapheme clusters."""

from __future__ import annotations

import asyncio

import regex

from bot import i18n
from tests.adapters.discord.harness import CHANNEL, Running, answered, reply_to, stored
from tests.adapters.discord.payloads import ADMIN_ID, DM_ID

OTHER_BOTS_COMMANDS = ("/start@QuotLyBot", "/status@OtherBot", "/ban@ModBot 12345")
QUIET_S = 0.3
FRENCH = "Bonjour à tous, la réunion est déplacée à jeudi."
GRAPHEMES = regex.compile(r"\X")
CLUSTERS = ["👨‍👩‍👧‍👦", "🇨🇳", "👍🏽", "e\u0301", "🏳️‍🌈", "x"]


def last_prompt(hearth: Running) -> str:
    return hearth.engine.prompts[-1][-1].content


async def test_words_with_an_image_are_answered_and_the_model_told_what_it_cannot_see(
    hearth: Running,
) -> None:
    mid = await hearth.fake.user_message("what is this?", mention=True, attachments=("image/png",))

    await reply_to(hearth.fake, mid, "what is this?")

    assert last_prompt(hearth) == "⟦Bob⟧: [image attached: you cannot see it, only this text]\nwhat is this?"


async def test_an_image_alone_in_a_dm_gets_a_notice_and_the_model_is_not_called(hearth: Running) -> None:
    mid = await hearth.fake.user_message("", channel=DM_ID, attachments=("image/jpeg",))

    [notice] = await reply_to(hearth.fake, mid, i18n.text("media_unseen", "en"))

    assert notice.text == i18n.text("media_unseen", "en")
    assert hearth.engine.prompts == []


async def test_a_sticker_with_a_mention_gets_the_notice(hearth: Running) -> None:
    mid = await hearth.fake.user_message("", mention=True, stickers=1)

    await reply_to(hearth.fake, mid, i18n.text("media_unseen", "en"))


async def test_an_image_posted_to_an_answer_everything_channel_is_not_answered(hearth: Running) -> None:
    switched = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": "on"}],
                                       author=ADMIN_ID)
    await answered(switched, hearth.fake)

    photo = await hearth.fake.user_message("", attachments=("image/png",))
    await asyncio.sleep(QUIET_S)

    assert hearth.fake.replies_to(photo) == []


async def test_the_message_replied_to_is_part_of_the_turn(hearth: Running) -> None:
    original = await hearth.fake.user_message(FRENCH, author=ADMIN_ID)
    mid = await hearth.fake.user_message("translate this into English", mention=True, replying_to=original)

    await reply_to(hearth.fake, mid, "English")

    assert last_prompt(hearth) == (
        f"⟦Bob⟧: > Alice wrote:\n> {FRENCH}\ntranslate this into English"
    )


async def test_an_attachment_of_the_message_replied_to_is_named(hearth: Running) -> None:
    original = await hearth.fake.user_message("our new office", author=ADMIN_ID, attachments=("image/png",))
    mid = await hearth.fake.user_message("where is it?", mention=True, replying_to=original)

    await reply_to(hearth.fake, mid, "where is it?")

    assert "> Alice wrote:\n> [image] our new office\nwhere is it?" in last_prompt(hearth)


async def test_commands_for_other_bots_are_never_answered_or_stored_even_answering_everything(
    hearth: Running,
) -> None:
    switched = await hearth.fake.slash("hearth-channel", [{"name": "mode", "type": 3, "value": "on"}],
                                       author=ADMIN_ID)
    await answered(switched, hearth.fake)
    ignored = [await hearth.fake.user_message(command) for command in OTHER_BOTS_COMMANDS]
    last = await hearth.fake.user_message("and this one is for everyone")

    await reply_to(hearth.fake, last, "for everyone")

    assert all(hearth.fake.replies_to(mid) == [] for mid in ignored)
    assert [m.text for m in await stored(hearth.app, CHANNEL, 2)] == [
        "and this one is for everyone", "echo: ⟦Bob⟧: and this one is for everyone"]


async def test_a_long_reply_is_cut_only_between_grapheme_clusters(hearth: Running) -> None:
    body = "a" + "".join(CLUSTERS) * 400  # no spaces: every cut is a hard one
    hearth.engine.script = lambda messages: [body]
    mid = await hearth.fake.user_message("clusters please", channel=DM_ID)

    parts = await hearth.fake.wait_for(
        lambda: (p := hearth.fake.replies_to(mid)) and "".join(x.text for x in p) == body and p)

    assert len(parts) > 2
    assert sum(len(GRAPHEMES.findall(p.text)) for p in parts) == len(GRAPHEMES.findall(body))


async def test_a_streamed_edit_never_shows_half_a_cluster(hearth: Running) -> None:
    pieces = ["Flags: ", "🇨", "🇳", " family: ", "👨\u200d", "👩\u200d", "👧", " ok"]
    hearth.engine.script = lambda messages: pieces
    hearth.engine.delay = 0.07  # longer than the edit interval: an edit after every piece
    mid = await hearth.fake.user_message("stream please", channel=DM_ID)

    [reply] = await reply_to(hearth.fake, mid, "ok")

    final = "".join(pieces)
    edges = {m.end() for m in GRAPHEMES.finditer(final)}
    assert reply.text == final and len(reply.contents) > 3
    assert all(final.startswith(c) and len(c) in edges for c in reply.contents)

