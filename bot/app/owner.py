"""The owner's data: taken out of the database (`hearth export`, `hearth backup`) or one
person's erased (`hearth forget`). The click commands are in `bot.app.owner_cli`.

- export: messages as JSON lines, one object per message (see `message_record`), oldest
  first, everything or one platform, channel or conversation, read a page at a time;
- backup: SQLite's online backup API copies the database while Hearth runs (WAL mode:
  a reader's snapshot, writers carry on), into a temporary file that is checked
  (`PRAGMA quick_check`) and then renamed into place; PostgreSQL has its own tool, named;
- forget: `Forgotten` from `OwnerData.forget_user`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.app.checks import postgres_place
from bot.app.entries import USER_IDS
from bot.messages import ConversationKey, StoredMessage
from bot.store import OwnerData

EXPORT_PAGE = 1000  # messages read per query
BACKUP_SUFFIX = ".partial"


@dataclass(frozen=True, slots=True)
class Where:
    """Which messages to export: a platform, a channel of it (all its threads), or one
    conversation (`thread` "" for the channel's own); None for any."""

    platform: str | None = None
    channel: str | None = None
    thread: str | None = None


def parse_where(channel: str | None, conversation: str | None) -> Where:
    """`--channel PLATFORM:CHANNEL` or `--conversation PLATFORM:CHANNEL[:THREAD]`; neither:
    everything. ValueError for a malformed one (or both)."""
    if channel and conversation:
        raise ValueError("give --channel or --conversation, not both")
    if channel:
        platform, _, name = channel.partition(":")
        if not platform or not name:
            raise ValueError("--channel is PLATFORM:CHANNEL, e.g. telegram:-1001234")
        return Where(platform, name)
    if conversation:
        platform, _, rest = conversation.partition(":")
        name, _, thread = rest.partition(":")
        if not platform or not name:
            raise ValueError("--conversation is PLATFORM:CHANNEL or PLATFORM:CHANNEL:THREAD")
        return Where(platform, name, thread)
    return Where()


def message_record(key: ConversationKey, message: StoredMessage) -> dict[str, object]:
    """One exported line: the conversation, then the message's stored fields; `created_at`
    in Unix seconds and `time` the same in ISO 8601 (UTC)."""
    moment = dt.datetime.fromtimestamp(message.created_at, dt.UTC).isoformat(timespec="seconds")
    return {
        "platform": key.platform, "channel": key.channel, "thread": key.thread, "id": message.id,
        "time": moment, "created_at": message.created_at, "role": message.role,
        "author_id": message.author_id, "author_name": message.author_name, "text": message.text,
        "status": message.status, "reply_to": message.reply_to,
        "platform_message_id": message.platform_message_id, "prompt_tokens": message.prompt_tokens,
        "cached_tokens": message.cached_tokens, "reply_tokens": message.reply_tokens,
    }


async def export_jsonl(store: OwnerData, out: TextIO, where: Where, page: int = EXPORT_PAGE) -> int:
    """Write every message `where` selects to `out`, one JSON object a line; how many."""
    written, after = 0, 0
    while rows := await store.export_messages(
        after, page, platform=where.platform, channel=where.channel, thread=where.thread
    ):
        for key, message in rows:
            out.write(json.dumps(message_record(key, message), ensure_ascii=False) + "\n")
        written += len(rows)
        after = rows[-1][1].id
    return written


def parse_user(entry: str) -> tuple[str, str]:
    """`PLATFORM:ID` (as in HEARTH_ADMIN_IDS: discord:…, telegram:…, terminal:…) → (platform,
    id). ValueError when it is not one."""
    platform, _, ident = entry.strip().partition(":")
    pattern = USER_IDS.get(platform)
    if pattern is None or not pattern.fullmatch(ident):
        raise ValueError(f"--user is PLATFORM:ID with PLATFORM one of {', '.join(USER_IDS)}, "
                         "e.g. telegram:123456789")
    return platform, ident


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the SQLite database at `source` into `target` (replaced when it exists) with the
    online backup API, checked before it takes `target`'s name; its size in bytes.
    Raises sqlite3.Error, or ValueError when the copy fails its check."""
    partial = target.with_name(target.name + BACKUP_SUFFIX)
    partial.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(f"file:{source}?mode=rw", uri=True)) as db, \
                closing(sqlite3.connect(partial)) as copy:
            db.backup(copy)  # one step: one read snapshot, while the writer carries on (WAL)
            found = [str(row[0]) for row in copy.execute("PRAGMA quick_check")]
        if found != ["ok"]:
            raise ValueError(f"the copy fails its check: {found[0][:200]}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def pg_dump_hint(url: str) -> str:
    """What to run instead of `hearth backup` on PostgreSQL (the URL without its password)."""
    place = postgres_place(url)
    host_port, _, database = place.partition("/")
    host, _, port = host_port.rpartition(":")
    return (f"HEARTH_DATABASE_URL is PostgreSQL ({place}): back it up with PostgreSQL's own tool, "
            f"e.g. `pg_dump --format=custom --file=hearth.dump --host={host} --port={port} "
            f"--username=USER {database}` (restore: `pg_restore --clean --dbname={database} hearth.dump`)")
