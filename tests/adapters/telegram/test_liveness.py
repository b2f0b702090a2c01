"""Nothing confirmed before it is stored, nothing queued holds up other chats, and no
running deaf: a revoked token or an unreachable Telegram ends `run()` with an error."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.telegram import TelegramAdapter, TelegramConfig
from bot.app.builder import App
from bot.errors import PlatformAuthError, PlatformDownError
from tests.adapters.telegram.fake_telegram import FakeTelegram
from tests.adapters.telegram.harness import ALICE, BOB, DM, DM_BOB, WAIT_S, HeldEngine, adapter_for, serving

FLOOD = 300


class AuditedTelegram(FakeTelegram):
    """Notes, at every getUpdates, the offset asked for and how many messages Hearth had stored."""

    def __init__(self) -> None:
        super().__init__()
        self.audit: list[tuple[int, int]] = []
        self.app: App | None = None

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.app is not None:
            self.audit.append((int(params.get("offset") or 0), await self.app.store.message_count()))
        return await super()._get_updates(params)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    fake = AuditedTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def test_an_update_is_confirmed_only_once_its_message_is_stored(
    app: App, engine: HeldEngine, fake: AuditedTelegram, config: TelegramConfig
) -> None:
    fake.app = app
    release = asyncio.Event()
    engine.hold("flood", release.wait)  # nothing is answered: only storing counts
    async with serving(adapter_for(app, config), fake):
        for n in range(FLOOD):
            fake.user_says(DM, ALICE, f"flood {n}")
        await fake.wait_for(lambda: any(offset > FLOOD for offset, _ in fake.audit), WAIT_S)
        release.set()

    assert all(stored >= offset - 1 for offset, stored in fake.audit), "confirmed before stored"
    assert await app.store.message_count() >= FLOOD


async def test_a_flood_in_one_chat_does_not_hold_up_another(
    app: App, engine: HeldEngine, fake: AuditedTelegram, config: TelegramConfig
) -> None:
    release = asyncio.Event()
    engine.hold("flood", release.wait)
    async with serving(adapter_for(app, config), fake):
        for n in range(FLOOD):
            fake.user_says(DM, ALICE, f"flood {n}")
        fake.user_says(DM_BOB, BOB, "are you there?")

        reply = await fake.wait_for_reply(DM_BOB, "echo: are you there?", WAIT_S)
        release.set()

    assert reply.text == "echo: are you there?"


async def test_a_token_revoked_while_running_ends_run_with_an_error(
    app: App, fake: AuditedTelegram, config: TelegramConfig
) -> None:
    task = asyncio.create_task(adapter_for(app, config).run())
    await fake.wait_for(lambda: bool(fake.calls_to("getUpdates")), WAIT_S)

    fake.token = "4242:REVOKED"

    with pytest.raises(PlatformAuthError) as caught:
        await asyncio.wait_for(task, WAIT_S)
    assert config.token.get_secret_value() not in str(caught.value)


async def test_telegram_unreachable_for_too_long_ends_run_with_an_error(
    app: App, fake: AuditedTelegram, config: TelegramConfig
) -> None:
    adapter = TelegramAdapter(dataclasses.replace(config, down_s=1.0), app.pipeline, app.commands, app.modes)
    task = asyncio.create_task(adapter.run())
    await fake.wait_for(lambda: bool(fake.calls_to("getUpdates")), WAIT_S)

    await fake.close()

    with pytest.raises(PlatformDownError):
        await asyncio.wait_for(task, WAIT_S * 2)


async def test_polling_outlasts_a_short_outage(
    app: App, fake: AuditedTelegram, config: TelegramConfig
) -> None:
    async with serving(adapter_for(app, config), fake):
        fake.outage(2.0)  # longer than the long poll in flight
        await fake.wait_for(lambda: any(c.status == 502 for c in fake.calls_to("getUpdates")), WAIT_S)
        fake.user_says(DM, ALICE, "still there after the outage?")

        reply = await fake.wait_for_reply(DM, "echo: still there after the outage?", WAIT_S)

    assert reply.text == "echo: still there after the outage?"
