"""A small append-only journal beside the database: what must not be lost while it fails.

When the store cannot commit and the platform cannot be asked to deliver again
(Discord confirms a message by sending it), the message is appended here, one JSON
object per line, flushed and fsynced, and handed to the store again once it takes
writes (`bot.journal.JournalledInbox`); a reply shown in full whose record could not
be committed before a shutdown is kept here too, and committed at the next start.
Entries leave the journal once committed; an empty journal is removed.

The journal normally lives on another disk than the database only if the owner puts
it there (HEARTH_JOURNAL_PATH); when it cannot be written either (the same disk is
full), the entry is kept in memory and the loss risk is logged at ERROR: a crash
before the store recovers would lose it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.messages import ConversationKey

log = logging.getLogger(__name__)

Entry = dict[str, Any]
MESSAGE = "message"  # a message the store could not take: {"platform", "message": IncomingMessage fields}
REPLY = "reply"  # a reply shown in full, not recorded: {"reply": add_message's arguments}


class Journal:
    """The entries not committed to the store yet, in the order they came; each has a
    `seq` number. Safe to share between tasks: file work runs in a thread, one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[Entry] = []
        self._next = 0
        self._lock = asyncio.Lock()
        self._loaded = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[Entry]:
        """What is waiting, oldest first (a copy)."""
        return list(self._entries)

    async def load(self) -> list[Entry]:
        """Read what an earlier run left (lines cut by a crash are skipped, logged); idempotent."""
        async with self._lock:
            await self._load_once()
            return list(self._entries)

    async def _load_once(self) -> None:
        if not self._loaded:
            self._entries = await asyncio.to_thread(_read, self.path)
            self._next = max((int(e["seq"]) for e in self._entries), default=-1) + 1
            self._loaded = True

    async def append(self, kind: str, data: Mapping[str, Any]) -> Entry:
        """Keep `data` as an entry of `kind`, durably when the file can be written."""
        async with self._lock:
            await self._load_once()
            entry = {"seq": self._next, "kind": kind, **data}
            self._next += 1
            self._entries.append(entry)
            try:
                await asyncio.to_thread(_append, self.path, entry)
            except OSError as exc:
                log.error("could not write the journal %s (%s): entry %d kept in memory only; "
                          "a crash before the database recovers would lose it", self.path, exc, entry["seq"])
            return entry

    async def done(self, entry: Entry) -> None:
        """`entry` is committed to the store: drop it (the file is rewritten, or removed when empty)."""
        async with self._lock:
            self._entries = [e for e in self._entries if e["seq"] != entry["seq"]]
            try:
                await asyncio.to_thread(_rewrite, self.path, list(self._entries))
            except OSError as exc:  # it stays in the file: replaying it again is deduplicated
                log.warning("could not rewrite the journal %s: %s", self.path, exc)


def _append(path: Path, entry: Entry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    with path.open("ab") as file:
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def _rewrite(path: Path, entries: list[Entry]) -> None:
    """Replace the file with `entries` atomically (write, fsync, rename); remove it when empty."""
    if not entries:
        path.unlink(missing_ok=True)
        return
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        for entry in entries:
            file.write((json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def _read(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            entry = json.loads(line)
            if isinstance(entry, dict) and "seq" in entry and "kind" in entry:
                entries.append(entry)
                continue
        except ValueError:
            pass
        log.warning("journal %s line %d is unreadable (cut by a crash?); skipped", path, number)
    return entries


def reply_entry(key: ConversationKey, text: str, **fields: Any) -> dict[str, Any]:
    """The journal's form of a reply: what `Conversations.add_message(key, "assistant",
    text, **fields)` would store."""
    return {"reply": {"key": dataclasses.asdict(key), "text": text, **fields}}
