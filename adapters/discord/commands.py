"""Hearth's slash commands: `/model`, `/persona`, `/reset`, `/status`, `/hearth-channel`.

Each one becomes an `IncomingMessage` and runs through `core.command`, except
`/hearth-channel`, which is Discord's own. Admin means Manage Server, as Discord
resolved it for this interaction, or a HEARTH_ADMIN_IDS entry; that is checked
here, on the server side, because `default_permissions` is only a hint that a
server can override. Refusals are ephemeral; everything else is deferred first,
since switching a model takes far longer than Discord's 3 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from adapters.discord.client import MAX_CHARS, NO_MENTIONS
from adapters.discord.convert import from_interaction
from bot import i18n
from bot.errors import NotAdminError
from bot.messages import IncomingMessage
from bot.splitting import split_message

if TYPE_CHECKING:
    import asyncio

    from bot.core import Hearth

log = logging.getLogger(__name__)

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
ANSWER_ALL = "answer_all"
CHANNEL_TEXTS = {
    "on": "I will answer every message in this channel (and its threads) from now on.",
    "off": "I will answer here only when mentioned or replied to.",
}

Interaction = discord.Interaction[discord.Client]
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


def needs_admin(msg: IncomingMessage, name: str, args: str) -> bool:
    """Mirrors `bot.commands`, so a refusal can be answered (ephemerally) before deferring.

    The core still enforces its own rules; this only picks how to answer."""
    verb = args.partition(" ")[0]
    return {
        "model": bool(args),
        "persona": verb in ("set", "reset"),
        "reset": not msg.is_direct,
        "hearth-channel": True,
    }.get(name, False)


class SlashCommands:
    """Answers interactions in tasks the adapter owns (`spawn`), so stop() can cancel them."""

    def __init__(self, core: Hearth, spawn: Spawn) -> None:
        self._core = core
        self._spawn = spawn

    def install(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        """Add every command to `tree`; `tree.sync()` then publishes them.

        Callbacks are closures: discord.py reads their signatures for the options,
        and would take a bound method's first option for `self`."""
        commands: list[app_commands.Command[Any, ..., None] | app_commands.Group] = [
            self._model_command(), self._persona_group(), *self._plain_commands(), self._channel_command(),
        ]
        for command in commands:
            tree.add_command(command)

    def model_choices(self, current: str) -> list[app_commands.Choice[str]]:
        names = [n for n in self._core.registry.names() if current.lower() in n.lower()]
        return [app_commands.Choice(name=n, value=n) for n in names[:MAX_CHOICES]]

    def _model_command(self) -> app_commands.Command[Any, ..., None]:
        @app_commands.command(name="model", description="List the models, or switch to another (admins)")
        @app_commands.describe(name="The model to serve; leave empty to list them")
        async def model(interaction: Interaction, name: str | None = None) -> None:
            await self.respond(interaction, "model", name or "")

        @model.autocomplete("name")
        async def names(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
            return self.model_choices(current)

        return model

    def _persona_group(self) -> app_commands.Group:
        group = app_commands.Group(name="persona", description="This channel's persona (system prompt)")

        @group.command(name="show", description="Show this channel's persona template")
        async def show(interaction: Interaction) -> None:
            await self.respond(interaction, "persona", "")

        @group.command(name="set", description="Override the persona for this channel (admins)")
        @app_commands.describe(text="The template: {bot_name}, {platform}, {channel_name}, {date}")
        async def set_(interaction: Interaction, text: str) -> None:
            await self.respond(interaction, "persona", f"set {text}")

        @group.command(name="reset", description="Go back to the default persona (admins)")
        async def reset(interaction: Interaction) -> None:
            await self.respond(interaction, "persona", "reset")

        return group

    def _plain_commands(self) -> list[app_commands.Command[Any, ..., None]]:
        @app_commands.command(name="reset", description="Forget this conversation (admins, except in DMs)")
        async def reset(interaction: Interaction) -> None:
            await self.respond(interaction, "reset", "")

        @app_commands.command(name="status", description="Model, queue, uptime and usage")
        async def status(interaction: Interaction) -> None:
            await self.respond(interaction, "status", "")

        return [reset, status]

    def _channel_command(self) -> app_commands.Command[Any, ..., None]:
        # No default_permissions: that would hide the command from HEARTH_ADMIN_IDS
        # admins without Manage Server; the check below is the one that counts.
        @app_commands.command(
            name="hearth-channel",
            description="Answer every message in this channel, or only mentions (admins)",
        )
        @app_commands.describe(mode="on: answer every message; off: only mentions and replies")
        @app_commands.guild_only()
        async def channel(interaction: Interaction, mode: Literal["on", "off"]) -> None:
            await self.respond(interaction, "hearth-channel", mode)

        return channel

    async def respond(self, interaction: Interaction, name: str, args: str) -> None:
        """Answer one command in an owned task."""
        await self._spawn(self._respond(interaction, name, args), f"discord-command-{name}")

    async def _respond(self, interaction: Interaction, name: str, args: str) -> None:
        msg = from_interaction(interaction, args)
        try:
            if needs_admin(msg, name, args) and not self._core.is_admin(msg):
                log.info("/%s by %s refused: not an admin", name, msg.admin_key)
                await self._refuse(interaction, name, args)
                return
            await interaction.response.defer(thinking=True)
            await self._reply(interaction, await self._run(msg, name, args))
        except discord.HTTPException as exc:
            log.warning("Discord rejected the answer to /%s: HTTP %s (code %s): %s",
                        name, exc.status, exc.code, exc.text)
        except Exception:  # the outer boundary of a command: log it, tell the user
            log.exception("/%s failed", name)
            await self._apologise(interaction, args)

    async def _run(self, msg: IncomingMessage, name: str, args: str) -> str:
        if name == "hearth-channel":
            await self._core.store.set_channel_flag(msg.key, ANSWER_ALL, "1" if args == "on" else None)
            return CHANNEL_TEXTS[args]
        return await self._core.command(msg, name, args)

    async def _refuse(self, interaction: Interaction, name: str, args: str) -> None:
        text = i18n.error_text(NotAdminError(f"/{name}"), self._core.language(args))
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @staticmethod
    async def _reply(interaction: Interaction, text: str) -> None:
        """Replace the "thinking…" message; a long answer continues in follow-ups."""
        first, *rest = split_message(text, MAX_CHARS) or ["…"]
        await interaction.edit_original_response(content=first, allowed_mentions=NO_MENTIONS)
        for part in rest:
            await interaction.followup.send(part, allowed_mentions=NO_MENTIONS)

    async def _apologise(self, interaction: Interaction, args: str) -> None:
        text = i18n.text("internal_error", self._core.language(args))
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=text)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.exception("could not deliver an error reply to a command")
