"""Discord's slash tree, rendered from the command table (`bot.commands`).

A command without subcommands becomes an `app_commands.Command` whose options
are the table's (all strings: `choices` become Discord choices, `complete`
becomes autocomplete); a command with subcommands becomes an `app_commands.Group`
with one command per subcommand. Descriptions are the English help, with the
Chinese carried in each `locale_str` for `HelpTranslator` to hand Discord as
zh-CN and zh-TW localisations. Every callback only turns its option values back
into the argument text (`Command.args_from`) and hands it to `answer`: who may
run what is the table's business, not Discord's.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any

import discord
from discord import app_commands

from adapters.discord.client import SlashCommand
from bot.commands import Command, Option, Text

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
CHINESE = frozenset({discord.Locale.chinese, discord.Locale.taiwan_chinese})
ZH = "zh"  # the `locale_str` extra that carries a description's Chinese

Interaction = discord.Interaction[discord.Client]
Answer = Callable[[Interaction, str, str], Awaitable[None]]  # (interaction, command name, argument text)
Callback = Callable[..., Coroutine[Any, Any, None]]
Suggest = Callable[[Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]]


class HelpTranslator(app_commands.Translator):
    """Chinese descriptions for Chinese clients, from the `Text` each one was rendered from."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if locale not in CHINESE:
            return None
        chinese = string.extras.get(ZH)
        return chinese if isinstance(chinese, str) else None


def render(commands: Iterable[Command], answer: Answer) -> list[SlashCommand]:
    """One slash command (or group) per command of the table; `answer` runs each use."""
    return [_render(command, answer) for command in commands]


def localised(text: Text) -> app_commands.locale_str:
    """English for Discord's default, Chinese for `HelpTranslator`."""
    return app_commands.locale_str(text.en, **{ZH: text.zh})


def _render(command: Command, answer: Answer) -> SlashCommand:
    rendered: SlashCommand
    if command.subcommands:
        rendered = app_commands.Group(name=command.name, description=localised(command.help))
        for sub in command.subcommands:
            callback = _callback(command, sub.name, sub.options, answer)
            rendered.add_command(_slash(sub.name, sub.help, callback))
    else:
        rendered = _slash(command.name, command.help, _callback(command, "", command.options, answer))
    if command.groups_only:
        app_commands.guild_only(rendered)
    return rendered


def _slash(name: str, help_text: Text, callback: Callback) -> app_commands.Command[Any, ..., None]:
    return app_commands.Command(name=name, description=localised(help_text), callback=callback)


def _callback(command: Command, verb: str, options: tuple[Option, ...], answer: Answer) -> Callback:
    """A callback taking `options` as keyword arguments. discord.py reads the options from the
    callback's signature, so it is set to the table's (`__signature__`, which inspect honours)."""

    async def callback(interaction: Interaction, **values: str | None) -> None:
        given: Mapping[str, str] = {name: value for name, value in values.items() if value}
        await answer(interaction, command.name, command.args_from(verb, given))

    callback.__signature__ = _signature(options)  # type: ignore[attr-defined]  # read by inspect
    return _described(callback, options)


def _signature(options: tuple[Option, ...]) -> inspect.Signature:
    """`(interaction, *, name: str = None, …)`: every option a string, optional ones defaulting to None."""
    interaction = inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=discord.Interaction)
    return inspect.Signature([interaction, *(
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=inspect.Parameter.empty if o.required else None)
        for o in options
    )])


def _described(callback: Callback, options: tuple[Option, ...]) -> Callback:
    """Descriptions, fixed choices and autocomplete for the options, through discord.py's decorators."""
    if options:
        app_commands.describe(**{o.name: localised(o.help) for o in options})(callback)
    choices = {o.name: [app_commands.Choice(name=c, value=c) for c in o.choices]
               for o in options if o.choices}
    if choices:
        app_commands.choices(**choices)(callback)
    completes = {o.name: _suggest(o.complete) for o in options if o.complete is not None and not o.choices}
    if completes:
        app_commands.autocomplete(**completes)(callback)
    return callback


def _suggest(complete: Callable[[str], list[str]]) -> Suggest:
    async def suggest(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=value, value=value) for value in complete(current)[:MAX_CHOICES]]

    return suggest
