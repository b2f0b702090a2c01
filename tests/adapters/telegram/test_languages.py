"""Every command of the table answers in its user's language on Telegram: a user whose app is
set to Chinese (`language_code`) gets Chinese, even for `/reset` or `/model demo`, whose
words say nothing; an English one gets English."""

from __future__ import annotations

import pytest

from adapters.telegram import TelegramAdapter
from adapters.telegram.commands import telegram_name
from tests.adapters.telegram.fake_telegram import Chat, FakeTelegram, User
from tests.adapters.telegram.harness import GROUP, LISTED, answer_to
from tests.languages import commands, in_language

OWNERS = {"en": User(LISTED.id, "Owner", "owner", language_code="en"),
          "zh": User(LISTED.id, "Owner", "owner", language_code="zh-hans")}


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_every_command_answers_in_the_users_language(
    fake: FakeTelegram, telegram: TelegramAdapter, lang: str
) -> None:
    owner = OWNERS[lang]
    fake.set_member(GROUP, owner, "administrator")
    wrong = []
    for name, args in commands(lang):
        chat: Chat = GROUP
        mid = fake.user_says(chat, owner, f"/{telegram_name(name)} {args}".strip())
        reply = (await answer_to(fake, chat, mid)).text
        if not in_language(reply, lang):
            wrong.append((name, args, reply[:100]))
    assert wrong == []
