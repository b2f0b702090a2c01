"""The command table: dispatch, the one admin check, and the one error boundary for commands."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot import i18n
from bot.boundary import ErrorBoundary
from bot.commands.spec import Access, Command, Invocation, Option, Text
from bot.errors import NotAdminError
from bot.messages import IncomingMessage
from bot.store.faults import patience

log = logging.getLogger(__name__)

COMMAND_PATIENCE_S = 10.0  # how long a command waits for a failing database (seconds)


@dataclass(frozen=True, slots=True)
class Admins:
    """Who is an admin: the platform says so (`author_is_admin`), or HEARTH_ADMIN_IDS
    lists the author as `platform:id` (`operators`, who may also change global rules)."""

    operators: frozenset[str] = frozenset()

    def may(self, msg: IncomingMessage, needed: Access) -> bool:
        """Whether `msg`'s author has the `needed` access. The only such check."""
        operator = msg.admin_key in self.operators
        admin = operator or msg.author_is_admin
        if needed is Access.OPERATOR:
            return operator
        if needed is Access.ADMIN:
            return admin
        if needed is Access.DIRECT_OR_ADMIN:
            return admin or msg.is_direct
        return True


class Commands:
    """Every command Hearth has, run the same way on every platform."""

    def __init__(self, commands: Iterable[Command], admins: Admins, boundary: ErrorBoundary,
                 locale: i18n.Locale) -> None:
        self._commands = {c.name: c for c in commands}
        self._commands.setdefault("help", Command("help", Text("what I can do", "命令列表"), self._help))
        self._admins = admins
        self._boundary = boundary
        self._locale = locale

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def get(self, name: str) -> Command | None:
        return self._commands.get(name.lower())

    def allowed(self, msg: IncomingMessage, name: str, args: str) -> bool:
        """Whether `msg`'s author may run `/name args` (True for an unknown name: it shows help)."""
        command = self.get(name)
        return command is None or self._admins.may(msg, command.access(args.strip()))

    async def run(self, msg: IncomingMessage, name: str, args: str = "") -> str:
        """Run `/name args` for `msg`'s author; the reply text, refusals and errors included."""
        args = args.strip()
        lang = self._locale.of(args or msg.text)
        command = self.get(name)
        if command is None:
            return self.help(lang)
        try:
            if not self.allowed(msg, name, args):
                raise NotAdminError(f"/{command.name}")
            if command.groups_only and msg.is_direct:
                return i18n.text("groups_only", lang, command=command.name)
            with patience(COMMAND_PATIENCE_S):  # a failing database: say so, do not hang
                return await command.handler(Invocation(msg, args, lang))
        except Exception as exc:  # the outer boundary of a command: the user hears of it
            return self._boundary.reply_for(exc, msg, f"/{command.name}")

    async def _help(self, call: Invocation) -> str:
        return self.help(call.lang)

    def help(self, lang: str = "en") -> str:
        """One line per command (and per subcommand), in `lang`."""
        lines: list[str] = []
        for command in self:
            lines.append(f"/{_usage(command.name, command.options)} — {command.help.get(lang)}")
            lines += [
                f"/{_usage(f'{command.name} {sub.name}', sub.options)} — {sub.help.get(lang)}"
                for sub in command.subcommands
            ]
        return "\n".join(lines)


def _usage(head: str, options: tuple[Option, ...]) -> str:
    """`persona set TEXT`, `model [NAME]`: required options in capitals, optional ones bracketed."""
    words = [o.name.upper() if o.required else f"[{o.name.upper()}]" for o in options]
    return " ".join([head, *words])
