"""`hearth run`: open the app, run the platforms, stop them cleanly on a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, TextIO

from bot.app.builder import HearthBuilder
from bot.app.platforms import build_platforms
from bot.app.settings import Settings
from bot.tasks import TaskOwner
from engine.errors import ModelLoadError

if TYPE_CHECKING:
    from adapters.base import Platform

log = logging.getLogger(__name__)

FORCED_EXIT_CODE = 130
STOP_GRACE_S = 8.0  # platforms finish replies in flight within this, then are cancelled


async def serve(settings: Settings, stdin: TextIO, stdout: TextIO) -> int:
    """Run Hearth until a signal, or until the terminal's input ends. The exit code."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        async with HearthBuilder(settings).build() as app:
            return await run_platforms(build_platforms(app, stdin, stdout), stop)
    except ModelLoadError as exc:
        log.error("%s", exc)
        return 1


async def run_platforms(platforms: list[Platform], stop: asyncio.Event) -> int:
    """Run every platform until one ends or `stop` is set; then stop them all. The exit code."""
    tasks = TaskOwner("platforms")
    running = [tasks.spawn(p.run(), f"platform-{p.platform}") for p in platforms]
    stopper = tasks.spawn(stop.wait(), "stop-signal")
    try:
        await asyncio.wait([*running, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for platform in platforms:
            await platform.stop()
        await asyncio.wait(running, timeout=STOP_GRACE_S)
        await tasks.close()
    failures = [e for t in running if not t.cancelled() and (e := t.exception()) is not None]
    for failure in failures:
        log.error("%s", failure, exc_info=failure)
    return 1 if failures else 0


def _install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGINT/SIGTERM: stop gracefully. A second one: leave at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(FORCED_EXIT_CODE)
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
