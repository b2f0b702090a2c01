"""The core every adapter talks to: settings, store, engine, gate, pipeline, commands."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from adapters.base import Adapter
from bot import i18n
from bot.commands import Commands
from bot.errors import HearthError
from bot.messages import IncomingMessage
from bot.moderation import AllowAllGate, Gate
from bot.moderation.leak import load_canary
from bot.persona import DEFAULT_PERSONA, PersonaContext, render_persona, with_canary
from bot.pipeline import Pipeline
from bot.registry import ModelSpec, Registry
from bot.settings import Settings
from bot.store import Store
from engine.base import Engine, Sampling

log = logging.getLogger(__name__)

ACTIVE_MODEL = "active_model"
ACTIVE_MODEL_ENV = "active_model_env"
DEMO_NOTICE = (
    "Model %r is Hearth's offline demo: a tiny random-weight model, so replies are "
    "random text until a real model is configured. Set HEARTH_MODEL in .env to a "
    "registry name (`hearth models` lists them, e.g. qwen2.5-1.5b on CPU, "
    "qwen2.5-7b-awq on GPU), a Hugging Face id or a local model directory."
)


class Hearth:
    """Holds the long-lived parts; adapters call `handle` and `command`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Engine,
        registry: Registry,
        gate: Gate | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.registry = registry
        self.gate: Gate = gate or AllowAllGate()
        self.pipeline = Pipeline(self)
        self.commands = Commands(self)
        self.started_at = time.monotonic()
        self._today = today
        self._canary: str | None = None
        self._canary_lock = asyncio.Lock()

    async def handle(self, msg: IncomingMessage, adapter: Adapter) -> None:
        """Answer one platform message."""
        await self.pipeline.handle(msg, adapter)

    async def command(self, msg: IncomingMessage, name: str, args: str = "") -> str:
        """Run an admin command; the reply text, refusals included."""
        try:
            return await self.commands.run(msg, name, args.strip())
        except HearthError as exc:
            log.info("command /%s by %s refused: %s", name, msg.admin_key, exc)
            return i18n.error_text(exc, self.language(args))

    def is_admin(self, msg: IncomingMessage) -> bool:
        return msg.author_is_admin or msg.admin_key in self.settings.admin_ids

    def language(self, text: str) -> str:
        return i18n.detect_language(text, self.settings.language)

    def sampling(self) -> Sampling:
        s = self.settings
        return Sampling(s.temperature, s.top_p, s.repetition_penalty, s.max_reply_tokens)

    def prompt_budget(self) -> int:
        """Tokens the prompt may use, leaving room for the reply."""
        max_len = self.engine.max_model_len
        return max_len - min(self.settings.max_reply_tokens, max_len // 2)

    async def persona_template(self, msg: IncomingMessage) -> str:
        override = await self.store.get_channel_persona(msg.key)
        return override or self.settings.persona or DEFAULT_PERSONA

    async def system_prompt(self, msg: IncomingMessage) -> str:
        context = PersonaContext(self.settings.bot_name, msg.platform, msg.channel_name, self._today())
        return with_canary(render_persona(await self.persona_template(msg), context), await self.canary())

    async def canary(self) -> str:
        """The secret the persona carries so the gate can tell a leaked prompt (stored once)."""
        async with self._canary_lock:
            if self._canary is None:
                self._canary = await load_canary(self.store)
            return self._canary

    async def switch_model(self, name: str) -> ModelSpec:
        """Serve `name` from now on and remember the choice across restarts."""
        spec = self.registry.get(name)
        if spec.name != self.engine.spec.name:
            await self.engine.switch(spec)
        await self.store.set_setting(ACTIVE_MODEL, spec.name)
        await self.store.set_setting(ACTIVE_MODEL_ENV, self.settings.model)
        warn_if_demo(spec)
        return spec


async def initial_model(store: Store, registry: Registry, settings: Settings) -> ModelSpec:
    """The admin's last choice, unless HEARTH_MODEL changed since it was made."""
    stored = await store.get_setting(ACTIVE_MODEL)
    chosen_under = await store.get_setting(ACTIVE_MODEL_ENV)
    if stored and chosen_under == settings.model and stored in registry.names():
        return registry.get(stored)
    return registry.lookup(settings.model)


def warn_if_demo(spec: ModelSpec) -> None:
    if spec.builtin:
        log.warning(DEMO_NOTICE, spec.name)
