"""The command table: dispatch, the one admin check, and the one error boundary for commands.

Before a command runs, the table's gates may answer instead (who may talk to Hearth at
all, HEARTH_ACCESS; the per-user rate limits messages have): each is a small callable
that returns None to let the command through, or the reply (`""`: nothing to send, so a
flood of commands costs the chat no messages).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from bot import i18n
from bot.boundary import ErrorBoundary
from bot.commands.spec import Access, Command, Invocation, Option, Text
from bot.errors import NotAdminError
from bot.messages import IncomingMessage
from bot.store.faults import patience

log = logging.getLogger(__name__)

CONSOLE = "terminal"  # the platform whose one user is the owner at the keyboard
COMMAND_PATIENCE_S = 10.0  # how long a command waits for a failing database (seconds)

# A gate in front of every command: None lets it through; a string is the reply instead
# ("" for none at all). Given the message and the language of the reply.
CommandGate = Callable[[IncomingMessage, str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Admins:
    """Two kinds of authority. Operators (HEARTH_ADMIN_IDS lists the author as
    `platform:id`) own global state: the serving model, global moderation words,
    loosened quotas, installs. Channel admins (the platform says so: `author_is_admin`)
    own their channel: persona, mode, its moderation words, a model pin. The terminal
    chat is the owner's own console: its user is an operator."""

    operators: frozenset[str] = frozenset()

    def level(self, msg: IncomingMessage) -> Access:
        """The most `msg`'s author may do: OPERATOR, ADMIN, DIRECT_OR_ADMIN (their own
        direct chat) or ANYONE."""
        if msg.admin_key in self.operators or msg.platform == CONSOLE:
            return Access.OPERATOR
        if msg.author_is_admin:
            return Access.ADMIN
        return Access.DIRECT_OR_ADMIN if msg.is_direct else Access.ANYONE

    def may(self, msg: IncomingMessage, needed: Access) -> bool:
        """Whether `msg`'s author has the `needed` access. The only such check."""
        return self.level(msg) >= needed


class Commands:
    """Every command Hearth has, run the same way on every platform."""

    def __init__(self, commands: Iterable[Command], admins: Admins, boundary: ErrorBoundary,
                 locale: i18n.Locale, gates: Sequence[CommandGate] = ()) -> None:
        self._commands = {c.name: c for c in commands}
        self._commands.setdefault("help", Command("help", Text("what I can do", "命令列表"), self._help))
        self._admins = admins
        self._boundary = boundary
        self._locale = locale
        self._gates = tuple(gates)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def get(self, name: str) -> Command | None:
        return self._commands.get(name.lower())

    def allowed(self, msg: IncomingMessage, name: str, args: str) -> bool:
        """Whether `msg`'s author may run `/name args` (True for an unknown name: it shows help)."""
        command = self.get(name)
        return command is None or self._admins.may(msg, command.access(args.strip()))

    def asks_admin(self, msg: IncomingMessage, name: str, args: str) -> bool:
        """Whether knowing that `msg`'s author is a channel admin would change the answer:
        the command needs more than they have now, or shows admins more (`/status`)."""
        command = self.get(name)
        if command is None:
            return False
        fuller = command.shows_more_to is not None and not self._admins.may(msg, command.shows_more_to)
        return fuller or not self.allowed(msg, name, args)

    def language(self, msg: IncomingMessage, args: str = "") -> str:
        """The language of a command's reply to `msg`'s author (see `i18n.Locale.of_command`)."""
        return self._locale.of_command(msg, args)

    async def gate(self, msg: IncomingMessage, lang: str | None = None) -> str | None:
        """What the gates say instead of running a command for `msg` (see the module
        docstring); None when it may run. Adapters with replies of their own (Telegram's
        /start) ask this first too."""
        for gate in self._gates:
            verdict = await gate(msg, lang or self._locale.of(msg.text))
            if verdict is not None:
                return verdict
        return None

    async def run(self, msg: IncomingMessage, name: str, args: str = "", *, gated: bool = False) -> str:
        """Run `/name args` for `msg`'s author; the reply text, refusals and errors included.
        An empty reply means there is nothing to send (a gate refused, and said so already).
        `gated`: the caller asked `gate` already (and it let the command through)."""
        args = args.strip()
        lang = self.language(msg, args)
        command = self.get(name)
        try:
            with patience(COMMAND_PATIENCE_S):  # a failing database: say so, do not hang
                if not gated and (instead := await self.gate(msg, lang)) is not None:
                    return instead
                if command is None:  # said, not echoed: the name is a stranger's text
                    return f"{i18n.text('unknown_command', lang)}\n{self.help(lang)}"
                if not self.allowed(msg, name, args):
                    operators = command.access(args) is Access.OPERATOR
                    raise NotAdminError(f"/{command.name}", operators=operators)
                if command.groups_only and msg.is_direct:
                    return i18n.text("groups_only", lang, command=command.name)
                return await command.handler(Invocation(msg, args, lang, self._admins.level(msg)))
        except Exception as exc:  # the outer boundary of a command: the user hears of it
            return self._boundary.reply_for(exc, msg, f"/{command.name if command else name}", lang)

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
