"""Could not deliver is not could not answer: a reply its platform would not take (5xx,
a dropped connection) is stored `undelivered` and finished, exactly once, when the
platform answers again. The pipeline on the fake engine and a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from bot.app.builder import App
from bot.errors import DeliveryError
from bot.messages import ConversationKey
from engine.fake import FakeEngine
from tests.fakes import ROOM, RecordingAdapter, message

WORDS = 12


class FlakyAdapter(RecordingAdapter):
    """A platform that answers `status` to every call while `down`, and counts the calls."""

    def __init__(self, status: int = 502) -> None:
        super().__init__()
        self.down = False
        self.status = status
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise DeliveryError("test", self.status, "Bad Gateway" if self.status >= 500 else "Bad Request")

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        self._check()
        return await super().send(key, text, reply_to=reply_to)

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        self._check()
        if next(s for s in self.sent if s.message_id == message_id).text != text:
            await super().edit(key, message_id, text)


def statuses(db: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.execute("SELECT role, status FROM messages ORDER BY id"))


def long_question() -> str:
    return " ".join(f"w{n}" for n in range(WORDS))


async def cut_after_first_part(app: App, adapter: FlakyAdapter) -> None:
    """A reply streams; the platform fails once its first part is shown, to the end."""
    engine = app.engine
    assert isinstance(engine, FakeEngine)
    engine.delay = 0.02
    task = await app.pipeline.submit(message(long_question(), "1"), adapter)
    assert task is not None
    while not adapter.sent:  # noqa: ASYNC110 - the first part is on screen
        await asyncio.sleep(0.005)
    adapter.down = True
    await asyncio.wait_for(task, 10)


async def test_a_reply_cut_by_a_platform_outage_is_finished_once_when_it_is_back(
    app: App, settings: object
) -> None:
    adapter = FlakyAdapter()
    await cut_after_first_part(app, adapter)
    [part] = adapter.sent
    assert part.text != f"echo: {long_question()}", "the outage cut it"
    db = app.settings.database
    assert statuses(db) == [("user", "answered"), ("assistant", "undelivered")]

    assert await app.redelivery.deliver({"telegram": adapter}) == 1  # still down: waits
    adapter.down = False
    assert await app.redelivery.deliver({"telegram": adapter}) == 0
    assert await app.redelivery.deliver({"telegram": adapter}) == 0  # nothing twice

    assert adapter.texts() == [f"echo: {long_question()}"], "the cut part itself was finished"
    assert len(adapter.sent) == 1
    assert statuses(db) == [("user", "answered"), ("assistant", "answered")]
    history = await app.store.history(ROOM)
    assert history[-1].platform_message_id == part.message_id


async def test_a_reply_never_shown_is_posted_quoting_its_question(app: App) -> None:
    adapter = FlakyAdapter()
    adapter.down = True
    await app.pipeline.handle(message("hello there", "42"), adapter)
    assert adapter.sent == [] and adapter.refused > 0

    adapter.down = False
    assert await app.redelivery.deliver({"telegram": adapter}) == 0
    assert adapter.texts() == ["echo: hello there"]
    assert statuses(app.settings.database) == [("user", "answered"), ("assistant", "answered")]


async def test_a_final_refusal_is_still_a_failure_not_a_wait(app: App) -> None:
    adapter = FlakyAdapter(status=400)
    adapter.down = True
    await app.pipeline.handle(message("hello there", "42"), adapter)
    assert statuses(app.settings.database) == [("user", "failed")]
    adapter.down = False
    assert await app.redelivery.deliver({"telegram": adapter}) == 0
    assert adapter.sent == []


async def test_the_worker_delivers_when_woken_by_a_new_undelivered_reply(app: App) -> None:
    adapter = FlakyAdapter()
    worker = asyncio.ensure_future(app.redelivery.run({"telegram": adapter}))
    try:
        adapter.down = True
        await app.pipeline.handle(message("are you there", "7"), adapter)
        adapter.down = False
        for _ in range(100):
            if adapter.texts():
                break
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert adapter.texts() == ["echo: are you there"]
    assert app.redelivery.delivered == 1


async def test_an_undelivered_reply_past_the_window_is_skipped_not_shown(app: App) -> None:
    adapter = FlakyAdapter()
    adapter.down = True
    await app.pipeline.handle(message("hello there", "42"), adapter)
    adapter.down = False
    await app.store.expire_undelivered(before=1e12)  # as the window passing would
    assert await app.redelivery.deliver({"telegram": adapter}) == 0
    assert adapter.sent == []
    assert statuses(app.settings.database) == [("user", "answered"), ("assistant", "skipped")]
