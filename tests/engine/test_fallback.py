"""Fallback models on the fake engine: the next one that loads serves, the chosen one
comes back when it loads, and an admin's choice ends the retries."""

from __future__ import annotations

import asyncio

from engine.errors import ModelLoadError
from engine.fake import FakeEngine
from engine.fallback import FallbackChain
from engine.registry import Registry
from engine.supervisor import SupervisionPolicy, Supervisor

FAST = SupervisionPolicy(check_every_s=0.01, hold_s=1.0, backoff_s=(0.01,), max_restarts=2, window_s=60.0)


Events = list[tuple[str, str]]


def chain(
    fail: set[str], fallbacks: tuple[str, ...] = ("demo-awq",)
) -> tuple[FallbackChain, FakeEngine, Events]:
    registry = Registry.load()
    fake = FakeEngine(registry.get("qwen2.5-0.5b"), fail_models=frozenset(fail))
    events: list[tuple[str, str]] = []
    supervisor = Supervisor(fake, FAST, on_event=lambda s, d: events.append((s, d)))
    chosen = registry.get("qwen2.5-0.5b")
    serving = FallbackChain(supervisor, chosen, [registry.get(n) for n in fallbacks],
                            on_event=lambda s, d: events.append((s, d)), retry_s=(0.05,))
    return serving, fake, events


async def test_a_chosen_model_that_will_not_load_is_replaced_by_the_first_fallback_that_does() -> None:
    serving, _, events = chain({"qwen2.5-0.5b", "demo-awq"}, fallbacks=("demo-awq", "demo"))
    await serving.start()
    try:
        assert serving.spec.name == "demo"
        assert serving.stats().note.startswith("fallback for qwen2.5-0.5b")
        assert events[0][0] == "fallback"
    finally:
        await serving.close()


async def test_the_chosen_model_comes_back_when_it_loads_again() -> None:
    serving, fake, events = chain({"qwen2.5-0.5b"})
    await serving.start()
    try:
        assert serving.spec.name == "demo-awq"
        fake._fail_models = frozenset()  # the chosen model's weights are back

        async with asyncio.timeout(2):
            while serving.spec.name != "qwen2.5-0.5b":  # noqa: ASYNC110 - the retry runs on its own timer
                await asyncio.sleep(0.02)
        assert serving.stats().note == ""
        assert [s for s, _ in events] == ["fallback", "chosen"]
    finally:
        await serving.close()


async def test_when_nothing_loads_the_chosen_models_error_is_raised() -> None:
    serving, _, _ = chain({"qwen2.5-0.5b", "demo-awq"})
    try:
        await serving.start()
        raise AssertionError("expected ModelLoadError")
    except ModelLoadError as exc:
        assert exc.model == "qwen2.5-0.5b"
    finally:
        await serving.close()


async def test_a_model_that_keeps_crashing_steps_down_the_chain() -> None:
    serving, fake, events = chain(set())
    serving_events = events
    await serving.start()
    supervisor_listener = serving.engine_event
    try:
        for _ in range(FAST.max_restarts + 1):
            fake.crash()
            await asyncio.sleep(0.1)
        # the supervisor said "failed": the chain, listening, moves to the fallback
        supervisor_listener("failed", "crashed three times")
        async with asyncio.timeout(2):
            while serving.spec.name != "demo-awq":  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert ("fallback", serving_events[-1][1]) in serving_events
    finally:
        await serving.close()


async def test_an_admins_choice_stops_the_retries() -> None:
    serving, fake, _ = chain({"qwen2.5-0.5b"})
    await serving.start()
    try:
        await serving.switch(Registry.load().get("demo"))
        fake._fail_models = frozenset()
        await asyncio.sleep(0.2)  # several retry periods

        assert serving.spec.name == "demo", "the admin's choice holds"
        assert serving.stats().note == ""
    finally:
        await serving.close()
