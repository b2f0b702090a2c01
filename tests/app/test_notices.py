"""Operator notices are debounced: strangers cannot make Hearth flood its operators.

The runner with the remote engine against a fake OpenAI-compatible server that refuses
every chat request with 401 while its health check answers: each message made the engine
flap down and back, and each "back" was a direct message to every operator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app.builder import HearthBuilder
from bot.app.notices import Debounce
from bot.app.runner import Runner
from bot.messages import ConversationKey
from bot.moderation import AllowAllGate
from tests.app.test_supervision import Flaky
from tests.conftest import make_settings
from tests.engine.fake_openai import FakeOpenAI
from tests.fakes import RecordingAdapter, message

OPERATOR = "4242"
WAIT_S = 5.0


class Told(Flaky):
    """A platform that keeps the direct messages operators get."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.told: list[tuple[str, str]] = []

    async def notify(self, user_id: str, text: str) -> None:
        self.told.append((user_id, text))


def test_one_notice_per_kind_per_interval_and_back_only_after_down() -> None:
    now = [0.0]
    notices = Debounce(600.0, clock=lambda: now[0])

    assert not notices.due("ready"), "nobody heard it was down"
    told = [notices.due(k) for k in ("unavailable", "ready", "unavailable", "ready")]
    assert told == [True, True, False, False]
    now[0] = 601.0
    assert [notices.due(k) for k in ("unavailable", "ready", "ready")] == [True, True, False]


async def test_ten_messages_on_a_refusing_server_tell_operators_at_most_twice(tmp_path: Path) -> None:
    fake = await FakeOpenAI(fail_status=401).start()
    platform, adapter, room = Told("telegram"), RecordingAdapter(), ConversationKey("telegram", "room")
    settings = make_settings(tmp_path, engine_kind="remote", engine_urls=fake.url, engine_attempts=1,
                             engine_health_interval_s=0.02, engine_start_wait_s=5,
                             admin_ids=f"telegram:{OPERATOR}")
    stop = asyncio.Event()
    try:
        async with HearthBuilder(settings).gate(AllowAllGate()).build() as app:
            running = asyncio.create_task(Runner(app, [platform]).run(stop))
            await asyncio.wait_for(platform.serving.wait(), WAIT_S)
            for n in range(10):
                await app.pipeline.handle(message(f"stranger {n}", str(n), room, author=f"s{n}"), adapter)
                await asyncio.sleep(0.05)  # the health check sees the server answer again: "back"
            stop.set()
            assert await asyncio.wait_for(running, WAIT_S) == 0
    finally:
        await fake.stop()

    assert len(fake.chats) == 10
    texts = [text for _, text in platform.told]
    assert 1 <= len(texts) <= 2, texts
    assert all(user == OPERATOR for user, _ in platform.told)
