"""`hearth export`, `hearth backup`, `hearth forget` (see `bot.app.owner`): each opens the
database the settings name, while Hearth runs or not, and refuses to create one."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from bot.app.checks import open_store, sqlite_problem
from bot.app.cli_support import fail, settings_or_exit
from bot.app.owner import Where, backup_sqlite, export_jsonl, parse_user, parse_where, pg_dump_hint
from bot.app.settings import Settings
from bot.app.stores import store_for
from bot.errors import ConfigError
from bot.store import Forgotten, Store

T = TypeVar("T")


@asynccontextmanager
async def existing_store(settings: Settings) -> AsyncIterator[Store]:
    """The store the settings name, opened; ConfigError when its SQLite file does not exist
    (a mistyped path must not become a new, empty database)."""
    if settings.database_url is None and not settings.database.is_file():
        raise ConfigError([f"no database at {settings.database} (HEARTH_DATA_DIR, HEARTH_DB_PATH)"])
    store = store_for(settings)
    await open_store(store, settings)
    try:
        yield store
    finally:
        await store.close()


@click.command()
@click.option("--channel", default=None, metavar="PLATFORM:CHANNEL",
              help="Only this channel (all its threads).")
@click.option("--conversation", default=None, metavar="PLATFORM:CHANNEL[:THREAD]",
              help="Only this conversation (without THREAD: the channel's own, no thread).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of stdout.")
def export(channel: str | None, conversation: str | None, output: Path | None) -> None:
    """Export stored messages as JSON lines (everything, a channel or a conversation)."""
    settings = settings_or_exit()
    try:
        where = parse_where(channel, conversation)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    count = _run(_export(settings, where, output))
    click.echo(f"exported {count} messages" + (f" to {output}" if output else ""), err=True)


async def _export(settings: Settings, where: Where, output: Path | None) -> int:
    async with existing_store(settings) as store:
        if output is None:
            return await export_jsonl(store, sys.stdout, where)
        with output.open("w", encoding="utf-8") as out:
            return await export_jsonl(store, out, where)


@click.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
def backup(target: Path, force: bool) -> None:
    """Copy the SQLite database to TARGET while Hearth runs (PostgreSQL: says how)."""
    settings = settings_or_exit()
    if settings.database_url is not None:
        fail([pg_dump_hint(settings.database_url.get_secret_value())])
    if target.exists() and not force:
        fail([f"{target} exists; give --force to replace it"])
    source = settings.database
    if not source.is_file():
        fail([f"no database at {source} (HEARTH_DATA_DIR, HEARTH_DB_PATH)"])
    try:
        size = backup_sqlite(source, target)
    except sqlite3.Error as exc:
        fail([sqlite_problem("backup", source, exc)])
    except (OSError, ValueError) as exc:
        fail([f"backup of {source} to {target} failed: {exc}"])
    click.echo(f"backed up {source} to {target} ({size / 2**20:.1f} MiB, checked)", err=True)


@click.command()
@click.option("--user", "user", required=True, metavar="PLATFORM:ID",
              help="The person, as in HEARTH_ADMIN_IDS: e.g. telegram:123456789.")
def forget(user: str) -> None:
    """Erase one person's messages, the replies to them, their verdicts and usage, everywhere."""
    settings = settings_or_exit()
    try:
        platform, author_id = parse_user(user)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--user") from None
    gone = _run(_forget(settings, platform, author_id))
    click.echo(f"forgot {platform}:{author_id}: {gone.messages} messages, {gone.replies} replies to them, "
               f"{gone.verdicts} moderation verdicts, {gone.usage} usage rows")


async def _forget(settings: Settings, platform: str, author_id: str) -> Forgotten:
    async with existing_store(settings) as store:
        return await store.forget_user(platform, author_id)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a ConfigError is one line per problem, exit 2."""
    try:
        return asyncio.run(work)
    except ConfigError as exc:
        fail(exc.problems)
