"""One platform's fault stays that platform's: the supervisor restarts it, a fatal error
still ends it, and a stop is never held up by a restart's pause."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.app.runner import Runner
from bot.app.supervision import Supervisor
from bot.errors import ConfigError, PlatformAuthError, PlatformDownError
from bot.messages import ConversationKey
from bot.ports import ReplyLimits
from engine.fake import FakeEngine
from tests.conftest import make_settings, open_app

QUICK = (0.01, 0.02, 0.05)
WAIT_S = 5.0


class Flaky:
    """A platform whose first runs fail with `errors` in turn; later runs serve until stopped."""

    limits = ReplyLimits(max_chars=100, edit_interval=0.0)

    def __init__(self, name: str, *errors: BaseException) -> None:
        self.platform = name
        self.runs = 0
        self.serving = asyncio.Event()
        self._errors = list(errors)
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self._errors:
            raise self._errors.pop(0)
        self.serving.set()
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()

    async def send(self, key: ConversationKey, text: str, *, reply_to: str | None = None) -> str:
        return "1"

    async def edit(self, key: ConversationKey, message_id: str, text: str) -> None:
        """Nothing to edit."""

    async def delete(self, key: ConversationKey, message_id: str) -> None:
        """Nothing to delete."""

    async def notify(self, user_id: str, text: str) -> None:
        """Nobody to tell."""


async def test_an_unexpected_error_restarts_the_platform(caplog: pytest.LogCaptureFixture) -> None:
    platform = Flaky("discord", ValueError("not JSON"), KeyError("t"))
    stopping = asyncio.Event()
    task = asyncio.create_task(Supervisor(platform, stopping, backoff=QUICK).run())

    await asyncio.wait_for(platform.serving.wait(), WAIT_S)
    stopping.set()
    await platform.stop()
    await asyncio.wait_for(task, WAIT_S)

    assert platform.runs == 3
    failures = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures), "each failure once, with its traceback"


@pytest.mark.parametrize("error", [
    PlatformAuthError("discord", "revoked"), PlatformDownError("telegram", 20.0, "502"),
    ConfigError(["shards"]),
])
async def test_a_fatal_error_ends_supervision_and_is_returned(error: Exception) -> None:
    platform = Flaky("telegram", error)

    assert await asyncio.wait_for(Supervisor(platform, asyncio.Event(), backoff=QUICK).run(), WAIT_S) is error
    assert platform.runs == 1


async def test_a_platform_that_returns_ends_its_supervisor() -> None:
    platform = Flaky("terminal")
    task = asyncio.create_task(Supervisor(platform, asyncio.Event(), backoff=QUICK).run())
    await asyncio.wait_for(platform.serving.wait(), WAIT_S)

    await platform.stop()  # the terminal at the end of its input

    await asyncio.wait_for(task, WAIT_S)
    assert platform.runs == 1


async def test_a_stop_ends_the_pause_before_a_restart_at_once() -> None:
    platform = Flaky("discord", RuntimeError("boom"))
    stopping = asyncio.Event()
    task = asyncio.create_task(Supervisor(platform, stopping, backoff=(60.0,)).run())
    await asyncio.sleep(0.05)

    stopping.set()

    await asyncio.wait_for(task, 1.0)
    assert platform.runs == 1


async def test_the_backoff_starts_over_after_a_steady_run(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    platform = Flaky("discord", RuntimeError("a"), RuntimeError("b"), RuntimeError("c"))

    async def run() -> None:
        now[0] += 1000.0 if platform.runs == 1 else 0.0  # the second run serves a long time, then fails
        await Flaky.run(platform)

    platform.run = run  # type: ignore[method-assign]
    supervisor = Supervisor(platform, asyncio.Event(), backoff=QUICK, steady_s=100.0, clock=lambda: now[0])
    task = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(platform.serving.wait(), WAIT_S)
    await platform.stop()
    await asyncio.wait_for(task, WAIT_S)

    failures = [r.args for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    waits = [args[1] for args in failures if isinstance(args, tuple)]
    assert waits == [0.01, 0.01, 0.02]


async def test_one_platform_failing_leaves_the_other_serving(engine: FakeEngine, tmp_path: Path) -> None:
    flaky, steady = Flaky("discord", RuntimeError("boom")), Flaky("telegram")
    stop = asyncio.Event()
    async with open_app(make_settings(tmp_path), engine) as app:
        running = asyncio.create_task(Runner(app, [flaky, steady]).run(stop))
        await asyncio.wait_for(flaky.serving.wait(), WAIT_S)  # restarted after its pause (1 s)

        assert steady.serving.is_set() and not running.done()
        stop.set()
        assert await asyncio.wait_for(running, WAIT_S) == 0
    assert (flaky.runs, steady.runs) == (2, 1)


async def test_a_fatal_error_still_ends_the_run_with_exit_1(
    engine: FakeEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    doomed, steady = Flaky("telegram", PlatformDownError("telegram", 5.0, "Bad Gateway")), Flaky("discord")
    async with open_app(make_settings(tmp_path), engine) as app:
        code = await asyncio.wait_for(Runner(app, [doomed, steady]).run(asyncio.Event()), WAIT_S)

    assert code == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["telegram unreachable for 5 s: Bad Gateway"]
    assert not errors[0].exc_info, "one clear line, no traceback"
