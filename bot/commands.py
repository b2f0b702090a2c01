"""Admin commands, platform-neutral: adapters map them to slash commands."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from bot.errors import NotAdminError
from bot.messages import IncomingMessage
from bot.moderation.admin import moderation_command
from bot.persona import MAX_PERSONA_CHARS

if TYPE_CHECKING:
    from bot.core import Hearth

HELP = (
    "/model — list models; /model NAME — switch (admins)\n"
    "/persona — show; /persona set TEXT, /persona reset (admins)\n"
    "/reset — forget this conversation\n"
    "/moderation block WORD [category], allow WORD, remove WORD, list (admins)\n"
    "/status — model, queue, uptime, usage"
)


class Commands:
    """`model`, `persona`, `reset`, `status`, `moderation`, `help`."""

    def __init__(self, core: Hearth) -> None:
        self._core = core

    async def run(self, msg: IncomingMessage, name: str, args: str) -> str:
        handler = {
            "model": self.model,
            "persona": self.persona,
            "reset": self.reset,
            "status": self.status,
            "moderation": self.moderation,
        }.get(name.lower())
        if handler is None:
            return HELP
        return await handler(msg, args)

    def _require_admin(self, msg: IncomingMessage, action: str) -> None:
        if not self._core.is_admin(msg):
            raise NotAdminError(action)

    async def model(self, msg: IncomingMessage, args: str) -> str:
        if not args:
            return self._model_list()
        self._require_admin(msg, "/model")
        spec = await self._core.switch_model(args)
        return f"Now serving {spec.name} ({spec.quantization})."

    def _model_list(self) -> str:
        current = self._core.engine.spec.name
        lines = [
            f"{'*' if s.name == current else ' '} {s.name} [{s.quantization}, {s.device}] {s.description}"
            for s in self._core.registry
        ]
        return "Models (* = serving):\n" + "\n".join(lines)

    async def persona(self, msg: IncomingMessage, args: str) -> str:
        verb, _, text = args.partition(" ")
        if verb == "set" and text.strip():
            self._require_admin(msg, "/persona set")
            await self._core.store.set_channel_persona(msg.key, text.strip()[:MAX_PERSONA_CHARS])
            return "Persona set for this channel."
        if verb == "reset":
            self._require_admin(msg, "/persona reset")
            await self._core.store.set_channel_persona(msg.key, None)
            return "Persona reset to the default."
        return "Persona template:\n" + await self._core.persona_template(msg)

    async def moderation(self, msg: IncomingMessage, args: str) -> str:
        return await moderation_command(self._core, msg, args)

    async def reset(self, msg: IncomingMessage, args: str) -> str:
        if not msg.is_direct:
            self._require_admin(msg, "/reset")
        deleted = await self._core.store.reset(msg.key)
        return f"Conversation forgotten ({deleted} messages)."

    async def status(self, msg: IncomingMessage, args: str) -> str:
        core = self._core
        stats = core.engine.stats()
        uptime = dt.timedelta(seconds=int(time.monotonic() - core.started_at))
        return "\n".join([
            f"model: {stats.model} ({stats.quantization}), {stats.state}",
            f"queue: {core.pipeline.queue_depth()} waiting or running, {stats.running} generating",
            f"uptime: {uptime}",
            f"served: {stats.replies} replies, {stats.reply_tokens} tokens out, {stats.prompt_tokens} in",
            f"prefix-cache hit rate: {stats.hit_rate:.1%}",
        ])
