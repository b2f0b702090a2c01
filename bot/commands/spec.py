"""A command, declared once: name, bilingual help, options, who may run it, handler.

Discord's slash tree, Telegram's menu and parser and the terminal's help are all
rendered from these values (`bot.commands.table`), so a command cannot exist on
one platform and be missing on another.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bot.messages import IncomingMessage

NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class Access(enum.IntEnum):
    """Who may run a command (or one use of it), from least to most privileged.

    ADMIN is a platform admin (Discord: Manage Server; Telegram: the group's
    administrators) or a HEARTH_ADMIN_IDS entry; OPERATOR is only the latter."""

    ANYONE = 0
    DIRECT_OR_ADMIN = 1  # anyone in a direct chat, admins in group channels
    ADMIN = 2
    OPERATOR = 3


@dataclass(frozen=True, slots=True)
class Text:
    """A user-facing string in English and Chinese."""

    en: str
    zh: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True, slots=True)
class Option:
    """One argument. On Discord a typed option; in text, the next word(s) in order.

    `choices` fixes the values; `complete` suggests values for what was typed so
    far (Discord's autocomplete); `rest` takes the rest of the line (a phrase)."""

    name: str
    help: Text
    required: bool = False
    choices: tuple[str, ...] = ()
    complete: Callable[[str], list[str]] | None = None
    rest: bool = False


@dataclass(frozen=True, slots=True)
class Invocation:
    """One run of a command: the message it came with, its argument text, and the most
    its author may do (`level`, decided by the table's one check: a handler that shows
    more to admins, like `/status`, reads it rather than deciding itself)."""

    msg: IncomingMessage
    args: str
    lang: str
    level: Access = Access.ANYONE

    @property
    def verb(self) -> str:
        """The first word of the arguments ("" when none)."""
        return self.args.partition(" ")[0]

    @property
    def rest(self) -> str:
        """The arguments after the first word, stripped."""
        return self.args.partition(" ")[2].strip()


CommandHandler = Callable[[Invocation], Awaitable[str]]
AccessRule = Callable[[str], Access]


def always(level: Access) -> AccessRule:
    """An access rule that does not depend on the arguments."""
    return lambda args: level


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A verb of a command (`/persona set`): its own options and help."""

    name: str
    help: Text
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    """A command, declared once. `access` maps the argument text to who may run it
    (`/model` lists for anyone, switches for operators); `groups_only` commands make
    sense only in group channels. `compose` turns option values back into the
    argument text (by default: the verb, then each given option in order).
    `shows_more_to` names who gets a fuller answer (`/status`: engine details for
    admins), so an adapter knows when asking the platform about the author is worth it."""

    name: str
    help: Text
    handler: CommandHandler
    access: AccessRule = field(default=always(Access.ANYONE))
    options: tuple[Option, ...] = ()
    subcommands: tuple[Subcommand, ...] = ()
    groups_only: bool = False
    compose: Callable[[str, Mapping[str, str]], str] | None = None
    shows_more_to: Access | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"command name {self.name!r} must match {NAME.pattern}")

    def args_from(self, verb: str, values: Mapping[str, str]) -> str:
        """The argument text for a verb and option values (as a slash command gives them)."""
        if self.compose is not None:
            return self.compose(verb, values)
        options = self.subcommand(verb).options if verb else self.options
        words = [verb, *(values[o.name] for o in options if values.get(o.name))]
        return " ".join(w for w in words if w)

    def subcommand(self, name: str) -> Subcommand:
        for sub in self.subcommands:
            if sub.name == name:
                return sub
        raise KeyError(name)
