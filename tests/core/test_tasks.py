"""TaskOwner: everything it spawned ends on close, even a task that let a cancellation go by."""

from __future__ import annotations

import asyncio

import pytest

from bot import tasks as tasks_module
from bot.tasks import TaskOwner


async def test_close_cancels_and_awaits_every_task() -> None:
    owner = TaskOwner("test")
    started = [owner.spawn(asyncio.sleep(3600), f"sleeper-{n}") for n in range(3)]
    await owner.close()
    assert all(t.cancelled() for t in started) and len(owner) == 0
    with pytest.raises(RuntimeError, match="closed"):
        owner.spawn(asyncio.sleep(0), "late")


async def test_a_task_that_swallowed_a_cancellation_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As Python 3.11's wait_for can (gh-86296): the first cancel is lost, the task goes on
    waiting; close used to wait for it for ever (a Discord test's teardown hung)."""
    monkeypatch.setattr(tasks_module, "RECANCEL_S", 0.05)
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1
                if cancels == 1:
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    continue  # lost, as in the race
                raise

    owner = TaskOwner("test")
    task = owner.spawn(stubborn(), "stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(owner.close(), 5)
    assert task.cancelled() and cancels == 2
