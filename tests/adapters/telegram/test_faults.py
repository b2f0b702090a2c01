"""Faults at the edge: an update nobody can read, a handler that fails, a store that cannot
commit, Telegram down. Polling goes on where it can; where it cannot, it stops in time."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.telegram import TelegramAdapter, TelegramConfig
from bot.app.builder import App
from bot.errors import PlatformDownError, StoreUnavailableError
from bot.messages import IncomingMessage
from bot.ports import Inbox, ReplyChannel
from tests.adapters.telegram.fake_telegram import FakeTelegram
from tests.adapters.telegram.harness import ALICE, DM, FAST, WAIT_S, history, key, serving
from tests.adapters.telegram.test_telegram import free_port, post_update

SECRET = "hook-secret"
DOWN_S = 2.0
BOUND_S = 2.5  # past down_s: the long poll in flight (1 s here), the last short try, slack


class FaultyInbox:
    """The pipeline, but `submit` fails for a message containing a word: `unavailable[word]`
    times with StoreUnavailableError (the store could not commit), or always with a bug."""

    def __init__(self, inner: Inbox) -> None:
        self._inner = inner
        self.unavailable: dict[str, int] = {}
        self.broken: set[str] = set()
        self.stored_at: dict[str, float] = {}  # word → when its message was finally stored

    async def submit(self, msg: IncomingMessage, channel: ReplyChannel) -> asyncio.Task[None] | None:
        for word, left in self.unavailable.items():
            if word in msg.text and left > 0:
                self.unavailable[word] = left - 1
                raise StoreUnavailableError("add message", "disk I/O error")
        if any(word in msg.text for word in self.broken):
            raise RuntimeError("a bug in handling")
        answering = await self._inner.submit(msg, channel)
        self.stored_at.update({w: time.monotonic() for w in self.unavailable if w in msg.text})
        return answering

    async def handle(self, msg: IncomingMessage, channel: ReplyChannel) -> None:
        await self._inner.handle(msg, channel)


@pytest.fixture
def inbox(app: App) -> FaultyInbox:
    return FaultyInbox(app.pipeline)


def adapter_on(app: App, config: TelegramConfig, inbox: Inbox, **changes: Any) -> TelegramAdapter:
    return TelegramAdapter(dataclasses.replace(config, **changes), inbox, app.commands, app.modes, FAST)


def unreadable(kind: str) -> dict[str, Any]:
    """An update PTB cannot read, or a message of a shape Hearth does not expect."""
    base = {"message_id": 9001, "date": int(time.time()), "from": ALICE.json()}
    return {"message": {
        "poll": base | {"chat": DM.json(), "poll": {"id": "p1", "question": "tea?"}},  # older fields only
        "no chat": base | {"text": "where am I"},
        "text as a number": base | {"chat": DM.json(), "text": 12345},
    }[kind]}


def offsets(fake: FakeTelegram) -> list[int]:
    return [int(c.params.get("offset") or 0) for c in fake.calls_to("getUpdates")]


@pytest.mark.parametrize("kind", ["poll", "no chat", "text as a number"])
async def test_an_update_that_cannot_be_read_is_skipped_and_polling_goes_on(
    app: App, config: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox,
    caplog: pytest.LogCaptureFixture, kind: str,
) -> None:
    async with serving(adapter_on(app, config, inbox), fake):
        bad = fake.deliver_raw(unreadable(kind))
        fake.user_says(DM, ALICE, "and this one?")

        await fake.wait_for_reply(DM, "echo: and this one?", WAIT_S)
        await fake.wait_for(lambda: max(offsets(fake)) > bad + 1, WAIT_S)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    warned = [w for w in warnings if f"update {bad}" in w]
    assert len(warned) == 1, warned
    assert "12345" not in warned[0] and "where am I" not in warned[0], "never the update's text"
    assert await history(app.store, key(DM), 2) == ["and this one?", "echo: and this one?"]


async def test_an_update_whose_handling_fails_is_skipped_and_polling_goes_on(
    app: App, config: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox, caplog: pytest.LogCaptureFixture
) -> None:
    inbox.broken.add("boom")
    async with serving(adapter_on(app, config, inbox), fake):
        fake.user_says(DM, ALICE, "boom")
        fake.user_says(DM, ALICE, "still there?")

        await fake.wait_for_reply(DM, "echo: still there?", WAIT_S)

    assert [r.levelno for r in caplog.records if "failed in handling" in r.getMessage()] == [logging.WARNING]


async def test_an_update_the_store_could_not_take_is_tried_again_and_not_confirmed_meanwhile(
    app: App, config: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox, caplog: pytest.LogCaptureFixture
) -> None:
    inbox.unavailable["hold on"] = 3  # three tries fail: 0.5 + 1 + 2 s of backoff
    async with serving(adapter_on(app, config, inbox), fake):
        update_id = fake.deliver_raw(fake.make_update(DM, ALICE, "hold on"))

        await fake.wait_for_reply(DM, "echo: hold on", WAIT_S * 2)
        await fake.wait_for(lambda: max(offsets(fake)) > update_id, WAIT_S)

    confirming = [c for c in fake.calls_to("getUpdates") if int(c.params.get("offset") or 0) > update_id]
    assert all(c.at >= inbox.stored_at["hold on"] for c in confirming), "confirmed before it was stored"
    assert [m.text for m in fake.bot_messages(DM)] == ["echo: hold on"]
    assert len([r for r in caplog.records if "not stored" in r.getMessage()]) == 1, "once per outage"


async def test_telegram_down_past_down_s_ends_run_within_seconds(
    app: App, config: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox
) -> None:
    adapter = adapter_on(app, config, inbox, down_s=DOWN_S)
    task = asyncio.create_task(adapter.run())
    await fake.wait_for(lambda: bool(fake.calls_to("getUpdates")), WAIT_S)

    started = time.monotonic()
    fake.outage(math.inf)
    with pytest.raises(PlatformDownError):
        await asyncio.wait_for(task, DOWN_S + WAIT_S)

    assert DOWN_S <= time.monotonic() - started < DOWN_S + BOUND_S


async def test_telegram_down_at_start_up_counts_toward_down_s(
    app: App, config: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox
) -> None:
    fake.outage(math.inf)
    started = time.monotonic()

    with pytest.raises(PlatformDownError):
        await asyncio.wait_for(adapter_on(app, config, inbox, down_s=DOWN_S).run(), DOWN_S + WAIT_S)

    assert DOWN_S <= time.monotonic() - started < DOWN_S + BOUND_S


async def test_run_serves_again_after_it_failed(
    app: App, config: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox
) -> None:
    adapter = adapter_on(app, config, inbox, down_s=0.5)
    fake.outage(math.inf)
    with pytest.raises(PlatformDownError):
        await asyncio.wait_for(adapter.run(), WAIT_S)
    fake.outage(0)

    async with serving(adapter, fake):
        fake.user_says(DM, ALICE, "back?")
        reply = await fake.wait_for_reply(DM, "echo: back?", WAIT_S)

    assert reply.text == "echo: back?"


# --- webhook mode ---------------------------------------------------------------------------


@pytest.fixture
def hooked(config: TelegramConfig) -> TelegramConfig:
    return dataclasses.replace(config, webhook_url="https://hearth.example/tg/hook", webhook_port=free_port(),
                               webhook_secret=SecretStr(SECRET))


async def test_webhook_answers_503_while_the_store_cannot_commit_and_takes_the_post_again(
    app: App, hooked: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox
) -> None:
    inbox.unavailable["hold on"] = 1
    async with serving(adapter_on(app, hooked, inbox), fake, ready="setWebhook"):
        update = fake.make_update(DM, ALICE, "hold on")

        assert await post_update(hooked, update, SECRET) == 503
        assert await post_update(hooked, update, SECRET) == 200  # Telegram posts it again
        await fake.wait_for_reply(DM, "echo: hold on", WAIT_S)


async def test_webhook_answers_200_to_an_update_it_cannot_read_and_logs_its_id(
    app: App, hooked: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(adapter_on(app, hooked, inbox), fake, ready="setWebhook"):
        assert await post_update(hooked, {"update_id": 777} | unreadable("poll"), SECRET) == 200
        assert await post_update(hooked, {"update_id": 778} | unreadable("no chat"), SECRET) == 200

    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("update 777 " in w for w in warned) and any("update 778" in w for w in warned)


async def test_webhook_answers_200_when_handling_fails_and_logs_it(
    app: App, hooked: TelegramConfig, fake: FakeTelegram, inbox: FaultyInbox, caplog: pytest.LogCaptureFixture
) -> None:
    inbox.broken.add("boom")
    async with serving(adapter_on(app, hooked, inbox), fake, ready="setWebhook"):
        assert await post_update(hooked, fake.make_update(DM, ALICE, "boom"), SECRET) == 200

    assert [r.levelno for r in caplog.records if "failed in handling" in r.getMessage()] == [logging.WARNING]
