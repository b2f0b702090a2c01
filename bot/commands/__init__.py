"""Commands, declared once in a table and rendered per platform.

`spec` holds the declaration shapes, `table` the dispatcher with the one admin
check, `builtin` and `moderation` the commands themselves.
"""

from bot.commands.spec import Access, Command, Invocation, Option, Subcommand, Text, always
from bot.commands.table import Admins, Commands

__all__ = ["Access", "Admins", "Command", "Commands", "Invocation", "Option", "Subcommand", "Text", "always"]
