"""`hearth run`: open the app, answer what a restart left, run the platforms, stop in bounds.

Shutdown (SIGTERM, SIGINT, end of the terminal's input) is ordered so that
nothing is lost and the process is gone within 10 s: replies in progress get
HEARTH_SHUTDOWN_GRACE_S to finish and are then interrupted (marked on screen,
answered after the next start) while the platforms can still edit them; then
the platforms stop, then the engine and the store close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, TextIO

import psutil

from bot.app.builder import App, HearthBuilder
from bot.app.checks import check_startup
from bot.app.collector import tune_collector
from bot.app.health import platform_probe
from bot.app.metrics_server import MetricsServer, started_monitor
from bot.app.notices import Debounce
from bot.app.pidfile import PidFile
from bot.app.platforms import build_platforms, check_tokens
from bot.app.settings import Settings
from bot.app.supervision import Supervisor
from bot.errors import HearthError, PlatformAuthError
from bot.tasks import TaskOwner
from engine.errors import ModelLoadError

if TYPE_CHECKING:
    from adapters.base import Platform

log = logging.getLogger(__name__)

FORCED_EXIT_CODE = 130
HARD_STOP_S = 9.0  # a stop never takes longer than this (README: "within 10 s")
STOP_GRACE_S = 2.0  # platforms close their connections within this, then are cancelled
ENGINE_NOTICES = {
    "restarting": "Hearth: the model engine died ({detail}); restarting it. Messages wait meanwhile.",
    "stalled": "Hearth: the model engine stalled ({detail}); restarting it. Messages wait meanwhile.",
    "ready": "Hearth: the model engine is back.",
    "failed": "Hearth: the model engine keeps failing ({detail}); I stopped restarting it. "
              "Run /model with the same name to try again.",
    "fallback": "Hearth: serving a fallback model: {detail}. I keep trying the chosen one.",
    "chosen": "Hearth: {detail}; the fallback stepped down.",
    "unavailable": "Hearth: no engine server answers ({detail}); messages get an apology until one does.",
}

STORE_NOTICES = {
    "failing": "Hearth: the database is failing ({reason}). Messages are kept (Telegram holds them, "
               "Discord's wait in the journal) and answered when it is back.",
    "ok": "Hearth: the database is back; waiting messages are being stored and answered.",
}


async def serve(settings: Settings, stdin: TextIO, stdout: TextIO) -> int:
    """Run Hearth until a signal, or until the terminal's input ends. The exit code.

    Raises ConfigError (one line) when the data dir or the database cannot be used, or
    another Hearth runs on the same database."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    # /healthz and /readyz answer from the first second, with the state so far (bot.app.health).
    monitor = await started_monitor(settings.metrics_host, settings.metrics_port)
    try:
        return await _serve(settings, stdin, stdout, stop, monitor)
    finally:
        if monitor is not None:
            await monitor.stop()


async def _serve(
    settings: Settings, stdin: TextIO, stdout: TextIO, stop: asyncio.Event, monitor: MetricsServer | None
) -> int:
    """`serve` once the monitor runs: the checks, the pid file, the tokens, then the app."""
    await check_startup(settings)  # seconds, before the pid file and the model (see bot.app.checks)
    pidfile = PidFile(settings.database)
    pidfile.claim()
    try:
        await check_tokens(settings)  # seconds, before a model load of minutes
    except PlatformAuthError as exc:
        pidfile.release()
        log.error("%s", exc)
        return 1
    builder = HearthBuilder(settings).stopping(stop.is_set)
    if monitor is not None:
        builder.monitor(monitor)
    try:
        async with builder.build() as app:
            tune_collector()  # after the model load: what it made is never walked again
            pidfile.engines(app.engine_pids())
            app.engine_events.listen(lambda state, detail: pidfile.engines(app.engine_pids()))
            return await Runner(app, build_platforms(app, stdin, stdout)).run(stop)
    except ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    finally:
        pidfile.release()


class Runner:
    """Owns the platforms' tasks (each under its own `Supervisor`) and the shutdown order."""

    def __init__(self, app: App, platforms: list[Platform]) -> None:
        self._app = app
        self._platforms = platforms
        self._tasks = TaskOwner("runner")
        self._stopping = asyncio.Event()
        self._notices = Debounce(app.settings.notice_interval_s)  # one per kind per HEARTH_NOTICE_INTERVAL_S

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until `stop` is set or a platform ends; the exit code (1 if a platform failed)."""
        await self._recover({p.platform: p for p in self._platforms})
        self._app.engine_events.listen(self._engine_event)
        self._app.store.health.listen(self._store_event)
        running = [self._tasks.spawn(Supervisor(p, self._stopping).run(), f"platform-{p.platform}")
                   for p in self._platforms]
        self._serving()
        stopper = self._tasks.spawn(stop.wait(), "stop-signal")
        taken = self._tasks.spawn(self._app.lease_lost.wait(), "lease-lost")  # another took our name
        try:
            await asyncio.wait([*running, stopper, taken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._shut_down(running)
        failures = [e for t in running if not t.cancelled() and (e := t.exception() or t.result())]
        for failure in failures:
            log.error("%s", failure, exc_info=failure if log.isEnabledFor(logging.DEBUG) else None)
        return 1 if failures or self._app.lease_lost.is_set() else 0

    def _serving(self) -> None:
        """From now on /readyz asks each platform whether it is connected."""
        readiness = self._app.readiness
        readiness.forget("platforms")
        for platform in self._platforms:
            readiness.watch(f"platform:{platform.platform}", platform_probe(platform))
        readiness.phase = "serving"

    async def _shut_down(self, running: list[asyncio.Task[HearthError | None]]) -> None:
        self._app.readiness.phase = "stopping"  # /readyz: 503 from now on
        self._stopping.set()  # no platform is restarted from now on
        await self._app.pipeline.drain(self._app.settings.shutdown_grace_s)
        for platform in self._platforms:
            await platform.stop()
        await asyncio.wait(running, timeout=STOP_GRACE_S)
        await self._tasks.close()

    async def _recover(self, channels: dict[str, Platform]) -> None:
        """What an earlier run left: journalled replies committed first (so recovery does
        not answer them again), pending messages answered, then journalled messages; and
        from now on, replies a platform did not take are delivered when it is back."""
        await self._app.journalled.replay(channels)
        await self._app.recovery.run(channels)
        self._app.journalled.start()
        self._tasks.spawn(self._app.redelivery.run(channels), "redelivery")

    def _store_event(self, state: str, reason: str) -> None:
        """Operators hear of an outage once (a flapping database: once per
        HEARTH_NOTICE_INTERVAL_S), and that it is back only when they heard it was failing."""
        if state in STORE_NOTICES and self._notices.due(f"store-{state}"):
            text = STORE_NOTICES[state].format(reason=reason)
            self._tasks.spawn(self._tell_operators(text), f"notice-store-{state}")

    def _engine_event(self, state: str, detail: str) -> None:
        """The engine's (or the remote servers') state changes, debounced like the database's."""
        text = ENGINE_NOTICES.get(state)
        if text is not None and self._notices.due(state):
            self._tasks.spawn(self._tell_operators(text.format(detail=detail)), f"notice-{state}")

    async def _tell_operators(self, text: str) -> None:
        """A direct message to every HEARTH_ADMIN_IDS entry on a running platform."""
        by_platform = {p.platform: p for p in self._platforms}
        for entry in sorted(self._app.settings.admin_ids):
            platform_name, _, user_id = entry.partition(":")
            platform = by_platform.get(platform_name)
            if platform is None:
                continue
            try:
                await platform.notify(user_id, text)
            except Exception:  # a notice is a courtesy; the log already has the event
                log.warning("could not tell %s about the engine", entry, exc_info=True)


def _hard_stop() -> None:
    """The backstop of the 10 s promise: whatever is still closing is abandoned. Nothing
    stored is lost (every write was committed), and the messages left unanswered are
    answered after the next start. vLLM's processes go too: those the lifeline knows with
    it, and any this process started that it does not know yet (an engine core still
    loading, whose pid is noted only once the load returns) are killed here."""
    log.error("shutdown took longer than %.0f s; exiting now", HARD_STOP_S)
    for handler in logging.getLogger().handlers:
        handler.flush()
    _kill_descendants()
    os._exit(0)


def _kill_descendants(pid: int | None = None) -> None:
    """SIGKILL every process `pid` (default: this one) started, and theirs (by parentage)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGINT/SIGTERM: stop gracefully. A second one: leave at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(FORCED_EXIT_CODE)
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()
        loop.call_later(HARD_STOP_S, _hard_stop)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
