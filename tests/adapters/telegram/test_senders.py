"""Who Hearth answers in a group: people, also when they post as a channel or as the group
(`sender_chat`), never another bot nor a linked channel's automatic forwards."""

from __future__ import annotations

from adapters.telegram import TelegramAdapter
from bot.app.builder import App
from tests.adapters.telegram.fake_telegram import (
    ANONYMOUS_ADMIN,
    CHANNEL_BOT,
    SERVICE,
    Chat,
    FakeTelegram,
    User,
)
from tests.adapters.telegram.harness import ALICE, BOB, GROUP, MENTION, answer_to, history, key

NEWS = Chat(-1009001, "channel", "Tea News")  # the group's linked channel, or a member's own
OTHER_BOT = User(5151, "Helper", "HelperBot", is_bot=True)


async def test_a_mention_by_someone_posting_as_a_channel_is_answered(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    asked = fake.user_says(GROUP, CHANNEL_BOT, f"{MENTION} hello from the news", sender_chat=NEWS)

    reply = await fake.wait_for_reply(GROUP, "echo: ⟦Tea News⟧: hello from the news")

    assert reply.reply_to == asked
    stored = (await app.store.history(key(GROUP)))[0]
    assert (stored.author_id, stored.author_name) == (str(NEWS.id), "Tea News")


async def test_a_command_by_someone_posting_as_a_channel_is_answered(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    asked = fake.user_says(GROUP, CHANNEL_BOT, "/persona", sender_chat=NEWS)

    reply = await answer_to(fake, GROUP, asked)

    assert "persona" in reply.text.lower()


async def test_someone_posting_as_a_channel_is_no_admin(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    asked = fake.user_says(GROUP, CHANNEL_BOT, "/persona set a pirate", sender_chat=NEWS)

    reply = await answer_to(fake, GROUP, asked)

    assert "only admins" in reply.text
    assert fake.calls_to("getChatMember") == []  # no member stands behind a channel to ask about


async def test_a_mention_by_an_anonymous_admin_is_answered(
    fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    asked = fake.user_says(GROUP, ANONYMOUS_ADMIN, f"{MENTION} speaking for the group", sender_chat=GROUP)

    reply = await fake.wait_for_reply(GROUP, "echo: ⟦Tea Room⟧: speaking for the group")

    assert reply.reply_to == asked


async def test_an_automatic_forward_is_never_answered_nor_stored(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.set_member(GROUP, ALICE, "administrator")
    fake.user_says(GROUP, ALICE, "/hearth_channel on")  # even a group that answers everything
    await fake.wait_for_reply(GROUP, "answer every message")
    for text in (f"{MENTION} new post", "/persona", "a post nobody mentions"):
        fake.user_says(GROUP, SERVICE, text, sender_chat=NEWS, automatic_forward=True)
    fake.user_says(GROUP, BOB, f"{MENTION} seen the post?")  # answered after those were seen

    await fake.wait_for_reply(GROUP, "echo: ⟦Bob⟧: seen the post?")

    assert [m.text for m in fake.bot_messages(GROUP)][1:] == ["echo: ⟦Bob⟧: seen the post?"]
    assert await history(app.store, key(GROUP), 2) == ["seen the post?", "echo: ⟦Bob⟧: seen the post?"]


async def test_another_bots_mention_is_never_answered(
    app: App, fake: FakeTelegram, telegram: TelegramAdapter
) -> None:
    fake.user_says(GROUP, OTHER_BOT, f"{MENTION} beep")
    fake.user_says(GROUP, BOB, f"{MENTION} boop")

    await fake.wait_for_reply(GROUP, "echo: ⟦Bob⟧: boop")

    assert [m.text for m in fake.bot_messages(GROUP)] == ["echo: ⟦Bob⟧: boop"]
    assert await history(app.store, key(GROUP), 2) == ["boop", "echo: ⟦Bob⟧: boop"]
