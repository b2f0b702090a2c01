"""`hearth run`: start the store, the engine and the adapters; stop them cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import suppress
from typing import TextIO

from adapters.base import Adapter
from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from adapters.terminal import TerminalAdapter
from bot.core import Hearth, initial_model, warn_if_demo
from bot.errors import ModelLoadError
from bot.logs import vllm_log_level
from bot.moderation.factory import build_gate
from bot.moderation.gate import LayeredGate
from bot.registry import ModelSpec, Registry
from bot.settings import Settings
from bot.store import SqliteStore, Store
from engine.models import ModelResolver
from engine.vllm_engine import EngineOptions, VllmEngine

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 10.0
FORCED_EXIT_CODE = 130


def engine_options(settings: Settings) -> EngineOptions:
    return EngineOptions(
        kv_cache_gib=settings.kv_cache_gib,
        max_model_len=settings.max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        vllm_log_level=vllm_log_level(settings.log_level),
    )


def build_engine(settings: Settings, spec: ModelSpec) -> VllmEngine:
    """The engine for `spec`, with the options the settings give (not started)."""
    return VllmEngine(spec, ModelResolver(settings.data_dir), engine_options(settings))


def make_gate(settings: Settings, store: Store) -> LayeredGate:
    """The moderation gate every message and reply passes (admin words come from `store`)."""
    return build_gate(settings, store)


def build_adapters(core: Hearth, stdin: TextIO, stdout: TextIO) -> list[Adapter]:
    """Every platform adapter whose token is set; the terminal chat when none is."""
    adapters: list[Adapter] = []
    if core.settings.discord_token is not None:
        adapters.append(DiscordAdapter(core, core.settings))
    if core.settings.telegram_token is not None:
        adapters.append(TelegramAdapter(core, core.settings))
    return adapters or [TerminalAdapter(core, stdin, stdout)]


async def serve(settings: Settings, stdin: TextIO, stdout: TextIO) -> int:
    """Run Hearth until a signal, or until the terminal's input ends. The exit code."""
    registry = Registry.load(settings.models_file)
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    async with SqliteStore(settings.database) as store, make_gate(settings, store) as gate:
        spec = await initial_model(store, registry, settings)
        warn_if_demo(spec)
        engine = build_engine(settings, spec)
        core = Hearth(settings, store, engine, registry, gate)
        try:
            log.info("loading model %s …", spec.name)
            await engine.start()
            return await _run_adapters(build_adapters(core, stdin, stdout), stop)
        except ModelLoadError as exc:
            log.error("%s", exc)
            return 1
        finally:
            with suppress(TimeoutError):
                await asyncio.wait_for(engine.close(), SHUTDOWN_TIMEOUT_S)


async def _run_adapters(adapters: list[Adapter], stop: asyncio.Event) -> int:
    tasks = [asyncio.create_task(a.run(), name=f"adapter-{a.platform}") for a in adapters]
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for adapter in adapters:
            await adapter.stop()
        for task in [*tasks, stopper]:
            task.cancel()
        results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    for failure in failures:
        log.error("adapter failed: %s", failure, exc_info=failure)
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
