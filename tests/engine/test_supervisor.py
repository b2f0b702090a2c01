"""Supervision on the fake engine: death noticed, restarted with backoff, given up loudly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing

import pytest

from engine.errors import EngineStalledError, EngineUnavailableError
from engine.fake import FakeEngine
from engine.fallback import FallbackChain
from engine.registry import ModelSpec, Registry
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


async def test_an_engine_that_dies_while_hearth_stops_is_not_restarted_nor_reported(
    fake: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[str, str]] = []
    stopping = False
    supervisor = Supervisor(fake, FAST, on_event=lambda state, detail: events.append((state, detail)),
                            stopping=lambda: stopping)
    await supervisor.start()
    try:
        fake.delay = 0.05
        stream = supervisor.stream(HELLO, Sampling())
        await anext(stream)
        stopping = True  # a terminal's Ctrl-C: Hearth stops, and vLLM's processes got the signal too
        fake.crash()
        with pytest.raises(EngineUnavailableError):  # the reply in flight still ends at once
            async for _ in stream:
                pass
        await asyncio.sleep(FAST.backoff_s[0] * 3)
        assert fake.restarts == 0 and events == []
        assert supervisor.stats().state == "stopped"
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
    finally:
        await supervisor.close()


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


# --- stalls: the engine is there but makes no progress ------------------------

STALL = SupervisionPolicy(check_every_s=0.01, hold_s=2.0, backoff_s=(0.2,), max_restarts=3, window_s=60.0,
                          stall_s=0.2)
LONG = [ChatMessage("user", " ".join(f"w{n}" for n in range(12)))]


class StoppableEngine(FakeEngine):
    """Like vLLM's engine core under SIGSTOP: still alive(), but no reply continues
    until `restart()` starts a fresh one (a reply begun before never does)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    async def restart(self) -> None:
        self.stopped = False
        await super().restart()

    async def stream(
        self, messages: Sequence[ChatMessage], sampling: Sampling
    ) -> AsyncGenerator[ReplyChunk, None]:
        async with aclosing(super().stream(messages, sampling)) as chunks:
            async for chunk in chunks:
                if self.stopped:
                    await asyncio.Event().wait()  # forever: only cancelling ends it
                yield chunk


@pytest.fixture
def stoppable(registry: Registry) -> StoppableEngine:
    return StoppableEngine(registry.get("demo"))


@pytest.fixture
async def stalling(stoppable: StoppableEngine) -> AsyncIterator[tuple[Supervisor, list[tuple[str, str]]]]:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor(stoppable, STALL, on_event=lambda state, detail: events.append((state, detail)))
    await supervisor.start()
    yield supervisor, events
    await supervisor.close()


async def stall_mid_reply(
    supervisor: Supervisor, engine: StoppableEngine
) -> tuple[EngineStalledError, float]:
    """Start a reply, stop the engine after its first chunk; the error the reply ends
    with and the seconds from the stop to it."""
    engine.delay = 0.02
    stream = supervisor.stream(LONG, Sampling())
    await anext(stream)
    engine.stop()
    stopped = time.monotonic()
    with pytest.raises(EngineStalledError) as caught:
        await asyncio.wait_for(anext(stream), 2.0)
    await stream.aclose()
    return caught.value, time.monotonic() - stopped


async def until_ready(supervisor: Supervisor) -> None:
    async with asyncio.timeout(2):
        while supervisor.stats().state != "ready":  # noqa: ASYNC110 - the recovery runs on its own
            await asyncio.sleep(0.01)


async def test_a_reply_on_a_stalled_engine_fails_after_stall_s_and_the_engine_restarts(
    stalling: tuple[Supervisor, list[tuple[str, str]]], stoppable: StoppableEngine
) -> None:
    supervisor, events = stalling

    error, seconds = await stall_mid_reply(supervisor, stoppable)

    assert STALL.stall_s <= seconds < STALL.stall_s + 0.5
    assert error.seconds >= STALL.stall_s
    assert supervisor.stats().state == "stalled"
    await until_ready(supervisor)
    assert stoppable.restarts == 1 and supervisor.stats().restarts == 1
    assert [state for state, _ in events] == ["stalled", "ready"]
    assert "no reply progress" in events[0][1]
    assert await reply(supervisor) == "echo: hello there"


async def test_a_request_made_while_a_stalled_engine_restarts_waits_and_is_answered(
    stalling: tuple[Supervisor, list[tuple[str, str]]], stoppable: StoppableEngine
) -> None:
    supervisor, _ = stalling
    await stall_mid_reply(supervisor, stoppable)
    assert supervisor.stats().state == "stalled"

    stoppable.delay = 0.0
    assert await asyncio.wait_for(reply(supervisor), 2) == "echo: hello there"
    assert stoppable.restarts == 1


async def test_a_reply_stalled_before_its_first_chunk_is_answered_after_the_restart(
    stalling: tuple[Supervisor, list[tuple[str, str]]], stoppable: StoppableEngine
) -> None:
    """Nothing was shown yet: as for a death, it waits for the restart and tries once more."""
    supervisor, events = stalling
    stoppable.stop()

    assert await asyncio.wait_for(reply(supervisor), 2) == "echo: hello there"
    assert [state for state, _ in events] == ["stalled", "ready"]


async def test_each_stall_is_reported_once(
    stalling: tuple[Supervisor, list[tuple[str, str]]], stoppable: StoppableEngine
) -> None:
    supervisor, events = stalling
    for _ in range(2):
        await stall_mid_reply(supervisor, stoppable)
        await asyncio.sleep(3 * STALL.stall_s)  # long enough to be reported again, if it were
        await until_ready(supervisor)

    assert [state for state, _ in events] == ["stalled", "ready", "stalled", "ready"]
    assert stoppable.restarts == 2


async def test_a_slow_reply_that_keeps_progressing_is_not_stalled(
    stalling: tuple[Supervisor, list[tuple[str, str]]], stoppable: StoppableEngine
) -> None:
    supervisor, events = stalling
    stoppable.delay = STALL.stall_s / 3  # 13 chunks: the whole reply takes over 4 x stall_s

    text = "".join([c.text async for c in supervisor.stream(LONG, Sampling())])

    assert text.endswith("w11") and events == [] and stoppable.restarts == 0


async def test_the_first_request_after_a_long_idle_is_not_stalled(
    stalling: tuple[Supervisor, list[tuple[str, str]]], stoppable: StoppableEngine
) -> None:
    supervisor, events = stalling
    await asyncio.sleep(3 * STALL.stall_s)  # idle: no chunk for longer than stall_s
    stoppable.delay = STALL.stall_s / 2

    assert await reply(supervisor) == "echo: hello there"
    assert events == [] and stoppable.restarts == 0


async def test_a_fallback_chain_shows_the_stall_and_passes_its_events_on(
    stoppable: StoppableEngine, registry: Registry
) -> None:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor(stoppable, STALL, on_event=lambda state, detail: events.append((state, detail)))
    serving = FallbackChain(supervisor, stoppable.spec, [registry.get("demo-awq")])
    await serving.start()
    try:
        stoppable.delay = 0.02
        stream = serving.stream(LONG, Sampling())
        await anext(stream)
        stoppable.stop()
        with pytest.raises(EngineStalledError):
            await asyncio.wait_for(anext(stream), 2.0)
        await stream.aclose()

        assert serving.stats().state == "stalled"
        await until_ready(supervisor)
        assert serving.stats().state == "ready" and serving.spec.name == "demo"
        assert [state for state, _ in events] == ["stalled", "ready"]
    finally:
        await serving.close()
