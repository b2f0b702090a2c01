"""Supervision on the fake engine: death noticed, restarted with backoff, given up loudly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.errors import EngineUnavailableError
from engine.fake import FakeEngine
from engine.registry import Registry
from engine.supervisor import SupervisionPolicy, Supervisor
from engine.types import ChatMessage, ReplyChunk, Sampling

FAST = SupervisionPolicy(check_every_s=0.01, hold_s=2.0, backoff_s=(0.05,), max_restarts=3, window_s=60.0)
HELLO = [ChatMessage("user", "hello there")]


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine(Registry.load().get("demo"))


@pytest.fixture
async def supervised(fake: FakeEngine) -> AsyncIterator[tuple[Supervisor, list[tuple[str, str]]]]:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor(fake, FAST, on_event=lambda state, detail: events.append((state, detail)))
    await supervisor.start()
    yield supervisor, events
    await supervisor.close()


async def reply(engine: Supervisor) -> str:
    return "".join([c.text async for c in engine.stream(HELLO, Sampling())])


async def test_a_dead_engine_is_restarted_and_serves_again(
    supervised: tuple[Supervisor, list[tuple[str, str]]], fake: FakeEngine
) -> None:
    supervisor, events = supervised
    fake.crash()

    assert await asyncio.wait_for(reply(supervisor), 2) == "echo: hello there"
    assert fake.restarts == 1
    assert [state for state, _ in events] == ["restarting", "ready"]
    assert supervisor.stats().restarts == 1 and supervisor.stats().state == "ready"


async def test_a_request_in_flight_fails_at_once_when_the_engine_dies(
    supervised: tuple[Supervisor, list[tuple[str, str]]], fake: FakeEngine
) -> None:
    supervisor, _ = supervised
    fake.delay = 0.05
    stream = supervisor.stream(HELLO, Sampling())
    await anext(stream)
    fake.crash()

    with pytest.raises(EngineUnavailableError):
        async for _ in stream:
            pass
    assert supervisor.stats().state in ("restarting", "ready")


async def test_a_request_waits_while_the_engine_restarts(
    supervised: tuple[Supervisor, list[tuple[str, str]]], fake: FakeEngine
) -> None:
    supervisor, _ = supervised
    fake.crash()
    await asyncio.sleep(0.02)  # the watcher has noticed; the restart is under way

    assert supervisor.stats().state == "restarting"
    assert await asyncio.wait_for(reply(supervisor), 2) == "echo: hello there"


async def test_repeated_crashes_give_up_loudly_until_an_admin_restarts(
    fake: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor(fake, FAST, on_event=lambda state, detail: events.append((state, detail)))
    await supervisor.start()
    try:
        for _ in range(FAST.max_restarts + 1):
            fake.crash()
            await asyncio.sleep(0.15)
        assert supervisor.stats().state == "failed"
        assert events[-1][0] == "failed"
        assert any(r.levelname == "ERROR" and "giving up" in r.getMessage() for r in caplog.records)
        with pytest.raises(EngineUnavailableError):
            await asyncio.wait_for(reply(supervisor), 0.5)

        await supervisor.switch(fake.spec)  # an admin's /model for the model that should serve

        assert supervisor.stats().state == "ready"
        assert await reply(supervisor) == "echo: hello there"
    finally:
        await supervisor.close()


async def test_a_model_that_will_not_load_again_counts_as_a_failed_restart(
    registry: Registry,
) -> None:
    fake = FakeEngine(registry.get("demo"))
    supervisor = Supervisor(fake, FAST)
    await supervisor.start()
    try:
        fake._fail_models = frozenset({"demo"})  # its weights are gone: restarts cannot load it
        fake.crash()
        await asyncio.sleep(0.5)
        stats = supervisor.stats()
        assert stats.state == "failed" and "scripted failure" in stats.last_error
    finally:
        await supervisor.close()


class HangingEngine(FakeEngine):
    """Like vLLM's engine core killed mid-request: the reply simply never continues."""

    async def stream(self, messages, sampling):  # type: ignore[no-untyped-def,override]
        yield ReplyChunk("partial")
        await asyncio.Event().wait()


async def test_a_reply_stuck_on_a_dead_engine_fails_within_the_check_interval(registry: Registry) -> None:
    hanging = HangingEngine(registry.get("demo"))
    supervisor = Supervisor(hanging, FAST)
    await supervisor.start()
    try:
        stream = supervisor.stream(HELLO, Sampling())
        assert (await anext(stream)).text == "partial"
        hanging.crash()

        with pytest.raises(EngineUnavailableError):
            await asyncio.wait_for(anext(stream), 1.0)
    finally:
        await supervisor.close()


async def test_a_reply_cancelled_mid_stream_closes_cleanly(
    supervised: tuple[Supervisor, list[tuple[str, str]]], fake: FakeEngine
) -> None:
    """Shutdown cancels replies in progress: no "generator already running" on the way out."""
    supervisor, _ = supervised
    fake.delay = 0.5

    async def consume() -> None:
        async for _ in supervisor.stream(HELLO, Sampling()):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.6)  # one chunk in, the next one awaited
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)

    assert done and task.cancelled(), "cancelled, not failed with RuntimeError"
