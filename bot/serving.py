"""Which model serves, and switching it: the admin's choice survives restarts."""

from __future__ import annotations

import logging
from collections.abc import Collection

from bot.messages import ConversationKey
from bot.store import ChannelSettings, GlobalSettings
from engine.base import Engine
from engine.errors import UnknownModelError
from engine.fleet import ReplicaStatus, Replicated
from engine.registry import ModelSpec, Registry
from engine.types import EngineStats

log = logging.getLogger(__name__)

ACTIVE_MODEL = "active_model"
PINNED_MODEL = "model"  # the channel flag naming the model a channel is pinned to
ACTIVE_MODEL_ENV = "active_model_env"
DEMO_NOTICE = (
    "Model %r is Hearth's offline demo: a tiny random-weight model, so replies are "
    "random text until a real model is configured. Set HEARTH_MODEL in .env to a "
    "registry name (`hearth models` lists them, e.g. qwen2.5-1.5b on CPU, "
    "qwen2.5-7b-awq on GPU), a Hugging Face id or a local model directory."
)


class ModelService:
    """The served model seen from the core: what it is, its counters, and `/model NAME`."""

    def __init__(
        self, engine: Engine, registry: Registry, settings: GlobalSettings, configured: str,
        channels: ChannelSettings | None = None, *, pinnable: Collection[str] = (),
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._settings = settings
        self._configured = configured
        self._channels = channels
        self._pinnable = frozenset(pinnable)  # HEARTH_CHANNEL_MODELS; empty: any served model

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
        model does not load (the previous one then keeps serving; one this machine cannot
        serve at all, `engine.devices`, at once)."""
        spec = await self._spec_for(name)
        if spec.name != self._engine.spec.name or self._engine.stats().state != "ready":
            await self._engine.switch(spec)  # the same model, when down: a restart
        await self._settings.set_setting(ACTIVE_MODEL, spec.name)
        await self._settings.set_setting(ACTIVE_MODEL_ENV, self._configured)
        warn_if_demo(spec)
        return spec


    async def served(self) -> list[str] | None:
        """What remote servers serve now (their `/v1/models`); None for the in-process engine."""
        if isinstance(self._engine, Replicated):
            return await self._engine.served_models()
        return None

    async def replicas(self) -> list[ReplicaStatus] | None:
        """Each remote replica's health, cache and queue; None for the in-process engine."""
        if isinstance(self._engine, Replicated):
            return await self._engine.replicas()
        return None

    async def pinned(self, key: ConversationKey) -> str | None:
        """The model `key`'s channel is pinned to, if an admin pinned one."""
        if self._channels is None:
            return None
        return await self._channels.get_channel_flag(key, PINNED_MODEL)

    async def pin(self, key: ConversationKey, name: str | None) -> str:
        """Pin `key`'s channel (and its threads) to `name`, or unpin it with None; the
        model that now answers there. Only a model served now, and allowed by the
        operator, may be pinned: any the remote servers serve that HEARTH_CHANNEL_MODELS
        lists (all of them when it is empty), or the in-process engine's loaded one.
        Pinning never loads anything. Raises UnknownModelError otherwise."""
        assert self._channels is not None, "built with channel settings"
        if name is not None:
            current = self._engine.spec.name
            servable = await self.served() or [current]
            if self._pinnable:
                servable = [n for n in servable if n in self._pinnable or n == current]
            if name not in servable:
                raise UnknownModelError(name, servable)
        await self._channels.set_channel_flag(key, PINNED_MODEL, name)
        return name or self._engine.spec.name

    async def _spec_for(self, name: str) -> ModelSpec:
        """A registry entry; for remote servers, any model they serve."""
        served = await self.served()
        if served is None:
            return self._registry.get(name)
        if name not in served:
            raise UnknownModelError(name, served)
        return ModelSpec(name=name, source=name, quantization="remote")


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
