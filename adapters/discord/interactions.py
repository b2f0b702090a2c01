"""Answering a slash command: through the command table, in a task the adapter owns.

Admin means Manage Server, as Discord resolved it for this interaction, or a
HEARTH_ADMIN_IDS entry; the table decides (`Commands.allowed`), on the server
side, because `default_permissions` is only a hint that a server can override.
A refusal is ephemeral; everything else is deferred first, since switching a
model takes far longer than Discord's 3 s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from adapters.discord.client import MAX_CHARS, NO_MENTIONS
from adapters.discord.commands import Interaction
from adapters.discord.convert import from_interaction
from bot import i18n
from bot.splitting import split_message

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.tasks import TaskOwner

log = logging.getLogger(__name__)


class SlashAnswers:
    """Runs each slash command in a task `tasks` owns, so the adapter's stop() can cancel it."""

    def __init__(self, commands: Commands, tasks: TaskOwner) -> None:
        self._commands = commands
        self._tasks = tasks

    async def __call__(self, interaction: Interaction, name: str, args: str) -> None:
        """Answer `/name args`; returns once the answer is shown (or has failed)."""
        await self._tasks.spawn(self._answer(interaction, name, args), f"discord-command-{name}")

    async def _answer(self, interaction: Interaction, name: str, args: str) -> None:
        msg = from_interaction(interaction, args)
        try:
            if not self._commands.allowed(msg, name, args):
                log.info("/%s by %s refused", name, msg.admin_key)
                await _refuse(interaction, await self._commands.run(msg, name, args))
                return
            await interaction.response.defer(thinking=True)
            await _reply(interaction, await self._commands.run(msg, name, args))
        except discord.HTTPException as exc:
            log.warning("Discord rejected the answer to /%s: HTTP %s (code %s): %s",
                        name, exc.status, exc.code, exc.text)
        except Exception:  # the outer boundary of a command's task: log it, tell the user
            log.exception("/%s failed", name)
            await _apologise(interaction, args)


async def _refuse(interaction: Interaction, text: str) -> None:
    """Only the author sees a refusal ("…" when the table has nothing more to say: a refused
    flood is told once, and Discord still wants an answer to each interaction)."""
    await interaction.response.send_message(text or "…", ephemeral=True, allowed_mentions=NO_MENTIONS)


async def _reply(interaction: Interaction, text: str) -> None:
    """Replace the "thinking…" message; a long answer continues in follow-ups."""
    first, *rest = split_message(text, MAX_CHARS) or ["…"]
    await interaction.edit_original_response(content=first, allowed_mentions=NO_MENTIONS)
    for part in rest:
        await interaction.followup.send(part, allowed_mentions=NO_MENTIONS)


async def _apologise(interaction: Interaction, args: str) -> None:
    """The adapter failed (the table never raises): say so rather than leave "thinking…" up."""
    text = i18n.text("internal_error", i18n.detect_language(args))
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.exception("could not deliver an error reply to a command")
