"""What every `hearth` command shares: settings loaded, or one line per problem and exit 2."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from bot.app.settings import Settings, load_settings
from bot.errors import ConfigError

CONFIG_EXIT_CODE = 2


def fail(problems: list[str]) -> NoReturn:
    """One line per problem on stderr, never a traceback; exit 2."""
    for problem in problems:
        click.echo(f"hearth: {problem}", err=True)
    sys.exit(CONFIG_EXIT_CODE)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail([f"bad setting {problem}" for problem in exc.problems])
