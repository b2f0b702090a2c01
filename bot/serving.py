"""Which model serves, and switching it: the admin's choice survives restarts."""

from __future__ import annotations

import logging

from bot.store import GlobalSettings
from engine.base import Engine
from engine.registry import ModelSpec, Registry
from engine.types import EngineStats

log = logging.getLogger(__name__)

ACTIVE_MODEL = "active_model"
ACTIVE_MODEL_ENV = "active_model_env"
DEMO_NOTICE = (
    "Model %r is Hearth's offline demo: a tiny random-weight model, so replies are "
    "random text until a real model is configured. Set HEARTH_MODEL in .env to a "
    "registry name (`hearth models` lists them, e.g. qwen2.5-1.5b on CPU, "
    "qwen2.5-7b-awq on GPU), a Hugging Face id or a local model directory."
)


class ModelService:
    """The served model seen from the core: what it is, its counters, and `/model NAME`."""

    def __init__(self, engine: Engine, registry: Registry, settings: GlobalSettings, configured: str) -> None:
        self._engine = engine
        self._registry = registry
        self._settings = settings
        self._configured = configured

    @property
    def spec(self) -> ModelSpec:
        return self._engine.spec

    @property
    def registry(self) -> Registry:
        return self._registry

    def stats(self) -> EngineStats:
        return self._engine.stats()

    async def switch(self, name: str) -> ModelSpec:
        """Serve `name` from now on and remember the choice across restarts.

        Naming the model that should be serving while it is down restarts it. Raises
        `UnknownModelError` for a name the registry lacks and `ModelLoadError` when the
        model does not load (the previous one then keeps serving)."""
        spec = self._registry.get(name)
        if spec.name != self._engine.spec.name or self._engine.stats().state != "ready":
            await self._engine.switch(spec)  # the same model, when down: a restart
        await self._settings.set_setting(ACTIVE_MODEL, spec.name)
        await self._settings.set_setting(ACTIVE_MODEL_ENV, self._configured)
        warn_if_demo(spec)
        return spec


async def initial_model(settings: GlobalSettings, registry: Registry, configured: str) -> ModelSpec:
    """The admin's last choice, unless HEARTH_MODEL (`configured`) changed since it was made."""
    stored = await settings.get_setting(ACTIVE_MODEL)
    chosen_under = await settings.get_setting(ACTIVE_MODEL_ENV)
    if stored and chosen_under == configured and stored in registry.names():
        return registry.get(stored)
    return registry.lookup(configured)


def warn_if_demo(spec: ModelSpec) -> None:
    if spec.builtin:
        log.warning(DEMO_NOTICE, spec.name)
