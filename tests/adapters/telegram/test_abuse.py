"""Strangers' power, tried as an attacker would: the real python-telegram-bot client against
the fake Bot API, Hearth wired by its composition root on the held fake engine.

Commands count against the rate limits messages have; HEARTH_ACCESS=allowlist answers only
the chats and people listed, and a stranger's direct message gets a pairing code an
operator can approve."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.telegram import Pacing, TelegramAdapter
from bot import i18n
from bot.app.builder import App
from bot.app.platforms import telegram_config
from tests.adapters.telegram.fake_telegram import FakeTelegram
from tests.adapters.telegram.harness import (
    ALICE,
    BOB,
    DM,
    DM_BOB,
    DM_LISTED,
    GROUP,
    LISTED,
    MENTION,
    HeldEngine,
    answer_to,
    serving,
)
from tests.conftest import make_settings, open_app

# Telegram's limits, twenty times faster: a message a chat every 0.05 s, 20 a group every 3 s.
PACING = Pacing(edit_interval=0.05, chat_interval=0.05, group_messages=20, group_window=3.0, typing_every=0.2,
                retry_backoff=0.05, poll_timeout=1.0, shutdown_grace=0.5)
FLOOD = 60
OTHER_CHAT = GROUP.__class__(-1003, "supergroup", "Elsewhere")


@asynccontextmanager
async def hearth(
    fake: FakeTelegram, engine: HeldEngine, tmp_path: Path, **settings: object
) -> AsyncIterator[App]:
    """Hearth on the fake Bot API with HEARTH_* `settings` (rate limits at their defaults)."""
    config = make_settings(tmp_path, admin_ids=f"telegram:{LISTED.id}", telegram_token=fake.token,
                           telegram_base_url=fake.base_url, user_messages_per_minute=20,
                           channel_messages_per_minute=60, **settings)
    async with open_app(config, engine) as app:
        adapter = TelegramAdapter(telegram_config(config), app.pipeline, app.commands, app.modes, PACING)
        async with serving(adapter, fake):
            yield app


async def test_a_command_flood_no_longer_delays_another_members_mention(
    fake: FakeTelegram, engine: HeldEngine, tmp_path: Path
) -> None:
    async with hearth(fake, engine, tmp_path):
        for _ in range(FLOOD):
            fake.user_says(GROUP, BOB, "/status")
        await fake.wait_for(lambda: len(fake.bot_messages(GROUP)) >= 6)
        started = time.monotonic()
        asked = fake.user_says(GROUP, ALICE, f"{MENTION} are you there?")
        await answer_to(fake, GROUP, asked)
        waited = time.monotonic() - started
        await asyncio.sleep(0.5)  # whatever else the flood would have sent

    to_bob = [m for m in fake.bot_messages(GROUP) if "uptime:" in m.text or "faster than" in m.text]
    assert len(to_bob) == 7, "the burst of 6 answered, then one notice, then silence"
    assert waited < 1.0, f"Alice waited {waited:.2f} s"
    print(f"flood: {len(to_bob)} replies to Bob; Alice answered in {waited:.2f} s")


async def test_a_chat_that_is_not_allowed_is_not_answered_and_the_refusal_is_stored(
    fake: FakeTelegram, engine: HeldEngine, tmp_path: Path
) -> None:
    async with hearth(fake, engine, tmp_path, access="allowlist",
                      access_allow=f"telegram:chat:{GROUP.id}") as app:
        fake.user_says(OTHER_CHAT, ALICE, f"{MENTION} hello?")
        fake.user_says(OTHER_CHAT, ALICE, f"{MENTION} anyone?")
        fake.user_says(OTHER_CHAT, BOB, "/status")
        asked = fake.user_says(GROUP, ALICE, f"{MENTION} hello")
        await answer_to(fake, GROUP, asked)
        await fake.wait_for(lambda: bool(fake.bot_messages(OTHER_CHAT)))
        await asyncio.sleep(0.2)  # nothing more comes
        refused = refused_count(app)

    assert [m.text for m in fake.bot_messages(OTHER_CHAT)] == [i18n.text("access_denied", "en")]
    assert stored_statuses(app, "hello?", "anyone?") == ["denied", "denied"], "stored, never answered"
    assert refused == 3, "two messages and a command, counted"


async def test_a_stranger_is_paired_by_an_operators_access_approve(
    fake: FakeTelegram, engine: HeldEngine, tmp_path: Path
) -> None:
    async with hearth(fake, engine, tmp_path, access="allowlist", dm_policy="pairing",
                      access_allow=f"telegram:user:{ALICE.id}"):
        fake.user_says(DM_BOB, BOB, "hi, let me in")
        notice = await fake.wait_for_reply(DM_BOB, "give them this code")
        code = notice.text.split("code: ")[1].split(" ")[0]
        fake.user_says(DM_BOB, BOB, "hello again?")
        fake.user_says(DM, ALICE, "/access approve " + code)  # allowed to talk, not an operator
        await fake.wait_for_reply(DM, "only Hearth's operators")
        fake.user_says(DM_LISTED, LISTED, "/access approve " + code)
        await fake.wait_for_reply(DM_LISTED, f"Paired: telegram:user:{BOB.id}")
        fake.user_says(DM_BOB, BOB, "now?")

        await fake.wait_for_reply(DM_BOB, "echo: now?")

    assert [m.text for m in fake.bot_messages(DM_BOB)][:1] == [notice.text], "one notice, not one per message"
    assert len(fake.bot_messages(DM_BOB)) == 2


def stored_statuses(app: App, *texts: str) -> list[str]:
    """How the messages with these texts ended, read from the SQLite file itself."""
    with sqlite3.connect(app.settings.database) as db:
        rows = dict(db.execute("SELECT text, status FROM messages WHERE role = 'user'").fetchall())
    return [rows.get(text, "") for text in texts]


def refused_count(app: App) -> float:
    """hearth_messages_refused_total{platform="telegram", reason="access"}."""
    value = app.metrics.registry.get_sample_value(
        "hearth_messages_refused_total", {"platform": "telegram", "reason": "access"})
    return value or 0.0
