"""The SQLite store: a file in WAL mode, a writer and a reader connection each on its own
thread, group-committed writes, migrated by `user_version`."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bot.errors import HearthError
from bot.messages import (
    ConversationKey,
    MessageStatus,
    PendingMessage,
    StoredMessage,
    Undelivered,
    Usage,
    Verdict,
    WordRule,
    default_status,
)
from bot.store.base import Forgotten, Lease
from bot.store.faults import StoreHealth, retried_on
from bot.store.history_cache import HistoryCache
from bot.store.rows import (
    check_role,
    forget_channel,
    meta_json,
    pending_from_row,
    undelivered_from_row,
    usage_values,
    verdict_columns,
    verdict_from_row,
    word_scope,
)
from bot.store.sqlite_schema import (
    CHECKPOINT_BUSY_TIMEOUT,
    CHECKPOINT_INTERVAL_S,
    CLAIM_LEASE,
    CLAIM_PENDING,
    DATA_VERSION,
    DELETE_MESSAGES_BY_ID,
    DELETE_VERDICTS_OF,
    EXPORT_MESSAGES,
    FLAG_MESSAGE,
    MAX_MESSAGE_ID,
    MIGRATIONS,
    MOVE_SETTINGS,
    MOVE_WORDS,
    NOTE_SHOWN,
    PRAGMAS,
    PRUNE_MESSAGES,
    PRUNE_USAGE,
    PRUNE_VERDICTS,
    RAISE_FLOOR,
    SELECT_CHANNEL_SETTINGS,
    SELECT_CLAIMED,
    SELECT_EVERY_CHANNEL_SETTING,
    SELECT_PENDING,
    SELECT_RECENT_CONVERSATIONS,
    SELECT_REPLIES_TO,
    SELECT_THEIRS,
    SELECT_USAGE,
    WAL_LIMIT_BYTES,
)
from bot.store.sqlite_threads import SqliteGroupCommit, SqliteThread
from bot.store.sqlite_wal import WalGauge, WalKeeper
from bot.store.statements import (
    ADD_USAGE,
    DELETE_CONVERSATION,
    DELETE_FLAG,
    DELETE_MESSAGES,
    DELETE_USAGE_OF,
    DELETE_WORD,
    EXPIRE_UNDELIVERED,
    INSERT_CONVERSATION,
    INSERT_MESSAGE,
    INSERT_VERDICT,
    MARK_DELIVERED,
    MERGE_MESSAGES,
    MERGE_VERDICTS,
    QUALIFY_PLATFORM_IDS,
    RELEASE_LEASE,
    RENAME_CONVERSATION,
    RESET_FLOOR,
    SELECT_CHANNEL_CONVERSATIONS,
    SELECT_CONVERSATION,
    SELECT_FLAGGED_CHANNELS,
    SELECT_HISTORY,
    SELECT_LEASE,
    SELECT_SETTING,
    SELECT_UNDELIVERED,
    SELECT_VERDICTS,
    SELECT_WORDS,
    SET_STATUS,
    SKIP_PENDING,
    UPSERT_FLAG,
    UPSERT_FLOOR,
    UPSERT_PERSONA,
    UPSERT_SETTING,
    UPSERT_WORD,
)
from engine.types import Role

log = logging.getLogger(__name__)

# SQLite's primary result codes that mean the database, not the statement, failed:
# BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
FAULT_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
BUSY_TIMEOUT_S = 5.0  # how long one statement waits for another connection's write lock
LONG_USAGE_ROWS = 64  # usage rows added at once past which the write is `long` (writer's thread)
EVERY_CHANNEL_ROWS = 100_000  # channel settings read whole at most (about 30 MB kept)
NOTE_WITHIN_S = 0.01  # a note of shown parts waits at most this long for a transaction to ride along with


def is_fault(exc: BaseException) -> bool:
    """Whether `exc` is the database failing (retry later), not a bug in a statement."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in FAULT_CODES
    # Without a code (raised by the sqlite3 module itself): a corrupt or non-database file.
    return type(exc) in (sqlite3.DatabaseError, sqlite3.OperationalError)


def describe(exc: BaseException) -> str:
    """The driver's word for a fault, first line only."""
    return (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]



class SchemaTooNewError(HearthError):
    """The database was migrated by a newer Hearth than this one."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(f"database schema version {found} is newer than {supported}")
        self.found = found
        self.supported = supported


@retried_on(is_fault, describe)
class SqliteStore:
    """The `Store` in one SQLite file (WAL mode), shared by all of the bot's tasks.

    Two connections, each on a thread of its own (`bot.store.sqlite_threads`), and each
    store call one hop to one of them with all of its statements:
    - writes go to the writer, batched: the writes queued while one transaction runs
      share the next (group commit), so channels do not wait for each other one
      statement at a time; a call returns once its transaction committed;
    - reads go to a reader connection of their own (WAL lets it read while the writer
      writes); a read sees every write whose call has returned;
    - recovery traces (`note_shown`: which platform messages show a reply while it
      streams) jump the writer's queue: a crash after a reply's first part reached the
      platform but before its id was noted leaves a part no restart can find, so that
      gap must not wait for a queue of writes (measured, when it queued behind a
      400-message flood's writes: 6 of 10 first parts lost). A third connection did
      not do it: SQLite's busy handler sleeps between tries, and the writer, taking the
      lock again at once, won every race (CI: a note waited for 1,280 of 2,000 writes).
      Nobody waits for a note: it rides with the next transaction (a short reply's own
      row, usually), or is written alone within NOTE_WITHIN_S; a transaction of its
      own per reply was a third of the store's work per answered message.

    A call the database fails (full, locked past the busy timeout, I/O, corrupt) is
    retried within the caller's patience, then raises StoreUnavailableError
    (`bot.store.faults`); `health` says whether the database is failing now.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        migrations: Sequence[str] = MIGRATIONS,
        checkpoint_interval: float = CHECKPOINT_INTERVAL_S,
        wal_limit: int = WAL_LIMIT_BYTES,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._checkpoint_interval = checkpoint_interval
        self._wal_limit = wal_limit
        self._migrations = tuple(migrations)
        self._writer_thread = SqliteThread("sqlite-writer")
        self._reader = SqliteThread("sqlite-reader")
        self._wal = WalGauge(self._path, wal_limit)
        self._writer = SqliteGroupCommit(self._writer_thread, is_fault, self._forget_ids, self._began,
                                         self._busy_timeout_ms, self._wal.over)
        self._open = False
        self._lifecycle = asyncio.Lock()
        # Conversation rows are deleted only by `move_channel`, which forgets their ids, so
        # ids can be remembered. Used only by whoever holds the writer's connection;
        # forgotten on any rollback.
        self._conversation_ids: dict[ConversationKey, int] = {}
        self._checkpointer: asyncio.Task[None] | None = None
        # Channel personas and flags as last read or written: read per message, written by
        # an admin's command now and then, and by nothing else (one Hearth per file: the
        # pid file) — so remembered, not read again. (platform, channel) → (kind, flag name)
        # → value; all of a channel's are read at once (a new channel's 8 reads were 8 hops).
        self._channels: dict[tuple[str, str], dict[tuple[str, str], str | None]] = {}
        self._setting_writes = 0  # a read that a write overtook is not remembered
        # Whether `_channels` holds every channel that has a setting (read whole once: a burst
        # of new channels then reads nothing); None: not read yet; False: too many to hold.
        self._every_channel: bool | None = None
        self._every_channel_lock = asyncio.Lock()
        # Notes of shown parts not written yet, by message id (set here, taken by the writer's transaction).
        self._notes: dict[int, str] = {}
        self._notes_lock = threading.Lock()
        # Each conversation's recent history as this process stored it (see `HistoryCache`);
        # PRAGMA data_version at the writer's last transaction tells another process wrote.
        self._history = HistoryCache()
        self._data_version: int | None = None  # read holding the writer's connection
        self.health = StoreHealth()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def transactions(self) -> int:
        """Write transactions committed so far (fewer than write calls under load)."""
        return self._writer.transactions

    async def open(self) -> None:
        """Connect and apply missing migrations; a no-op when already open."""
        async with self._lifecycle:
            if self._open:
                return
            await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
            try:
                await self._writer_thread.open(self._connect_writer)
                await self._reader.open(functools.partial(_connect, self._path, self._busy_timeout_ms))
            except BaseException:
                for thread in (self._reader, self._writer_thread):
                    await thread.close()
                raise
            self._open = True
            self._checkpointer = asyncio.create_task(self._checkpoint_regularly())

    async def close(self) -> None:
        """Let queued writes commit, then disconnect; a no-op when closed."""
        async with self._lifecycle:
            if self._checkpointer is not None:
                self._checkpointer.cancel()
                await asyncio.gather(self._checkpointer, return_exceptions=True)
                self._checkpointer = None
            await self._writer.close()
            self._open = False
            for thread in (self._reader, self._writer_thread):
                await thread.close()  # the last connection to close checkpoints the WAL
            self._conversation_ids.clear()
            self._channels.clear()
            self._every_channel = None
            self._history.clear()
            self._data_version = None

    async def add_message(
        self,
        key: ConversationKey,
        role: Role,
        text: str,
        *,
        author_id: str = "",
        author_name: str = "",
        platform_message_id: str | None = None,
        prompt_tokens: int = 0,
        cached_tokens: int = 0,
        reply_tokens: int = 0,
        reply_to: int | None = None,
        status: MessageStatus | None = None,
        meta: Mapping[str, object] | None = None,
        owner: str | None = None,
        question_status: MessageStatus | None = None,
    ) -> int | None:
        """Store one message; return its id, or None when `platform_message_id`
        was already stored in this conversation (a duplicate delivery).

        `reply_to` names the user message an assistant reply answers: history
        orders a reply right after it, even when other messages arrived between.
        `status` defaults to `pending` for a user message, `answered` for a reply;
        `meta` (JSON) keeps what answering it after a restart needs; `owner` stores
        it already claimed (see `claim_pending`); `question_status` sets `reply_to`'s
        status in the same transaction (see `Conversations.add_message`). Messages are
        stored in the order their tasks called."""
        check_role(role)
        fields = (role, author_id, author_name, text, time.time(), platform_message_id,
                  prompt_tokens, cached_tokens, reply_tokens, reply_to, status or default_status(role))
        values = (*fields, meta_json(meta), owner)

        def job(db: sqlite3.Connection) -> tuple[int, bool] | None:
            conversation, created = self._conversation(db, key)
            new_id = _value(db, INSERT_MESSAGE, (conversation, *values))
            if new_id is not None and question_status is not None and reply_to is not None:
                db.execute(SET_STATUS, (question_status, reply_to))
            return None if new_id is None else (int(new_id), created)

        def committed(stored: tuple[int, bool] | None) -> None:
            if stored is not None:
                message = StoredMessage.from_row((stored[0], *fields))
                self._history.added(key, message, new_conversation=stored[1], question_status=question_status)

        stored = await self._writer.write(job, committed)
        return None if stored is None else stored[0]

    async def set_status(self, message_id: int, status: MessageStatus) -> None:
        """Record how a message ended (see `MessageStatus`); nothing when it was deleted."""
        await self._write(SET_STATUS, (status, message_id),
                          lambda _: self._history.status_set(message_id, status))

    async def note_shown(self, message_id: int, platform_ids: Sequence[str]) -> None:
        """Remember which platform messages show the reply to `message_id` while it streams,
        so a reply a crash cut can be found and marked after the restart. Returns at once:
        the note goes to the front of the writer's queue and is committed with the next
        transaction, or alone within NOTE_WITHIN_S (see the class docstring). Of notes for
        one message made in quick succession, the last is the one stored."""
        with self._notes_lock:
            queued = message_id in self._notes
            self._notes[message_id] = json.dumps(list(platform_ids))
        if not queued:
            self._writer.write_later(functools.partial(self._write_note, message_id), "a reply's shown parts",
                                     within=NOTE_WITHIN_S, first=True)

    def _write_note(self, message_id: int, db: sqlite3.Connection) -> None:
        """The latest note for `message_id` (holding the writer's connection): a later note made while this
        one waited is the one written, so notes are never stored out of order."""
        with self._notes_lock:
            shown = self._notes.pop(message_id, None)
        if shown is not None:
            db.execute(NOTE_SHOWN, (shown, message_id))

    async def pending(self, since: float) -> list[PendingMessage]:
        """User messages still `pending` that arrived at or after `since` (Unix time), oldest
        first, with the notes `note_shown` queued before this call."""
        await self._writer.settled()
        return [pending_from_row(row) for row in await self._fetch(SELECT_PENDING, (since,))]

    async def claim_pending(self, since: float, owner: str) -> list[PendingMessage]:
        """Claim for `owner` the `pending` user messages at or after `since` that no
        other owner holds, oldest first. BEGIN IMMEDIATE takes SQLite's write lock,
        so another process's claim waits and then finds them taken."""
        params = {"owner": owner, "since": since}

        def job(db: sqlite3.Connection) -> list[Any]:
            db.execute(CLAIM_PENDING, params)
            return db.execute(SELECT_CLAIMED, params).fetchall()

        return [pending_from_row(row) for row in await self._writer.write(job, long=True)]

    async def skip_pending(self, before: float) -> int:
        """Mark `pending` user messages older than `before` (Unix time) `skipped`; how many."""
        return await self._write_count(SKIP_PENDING, (before,), self._changed_many, long=True)

    async def undelivered(self, since: float, owner: str) -> list[Undelivered]:
        """`undelivered` replies of `owner` at or after `since`, oldest first, with the notes
        `note_shown` queued before this call."""
        await self._writer.settled()
        return [undelivered_from_row(row) for row in await self._fetch(SELECT_UNDELIVERED, (since, owner))]

    async def expire_undelivered(self, before: float) -> int:
        """Mark `undelivered` replies older than `before` `skipped`; how many."""
        return await self._write_count(EXPIRE_UNDELIVERED, (before,), self._changed_many, long=True)

    async def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """An `undelivered` reply is `answered` now, with its first part's id unless it had one."""

        def committed(changed: int) -> None:
            if changed:
                self._history.status_set(message_id, "answered", platform_message_id)

        await self._write(MARK_DELIVERED, (platform_message_id, message_id), committed)

    async def history(self, key: ConversationKey, limit: int = 200) -> list[StoredMessage]:
        """The newest `limit` messages whose turn is at or after the context floor,
        ordered by turn (see `StoredMessage.turn`), then id. User messages that the
        moderation gate flagged are left out: the model never sees them."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        kept = self._history.get(key, limit)
        if kept is not None:
            return kept
        with self._history.reading(key, limit) as fill:
            rows = await self._fetch(SELECT_HISTORY, (*_key(key), limit))
            messages = [StoredMessage.from_row(row) for row in reversed(rows)]
            fill(messages)
        return messages

    async def set_context_floor(self, key: ConversationKey, message_id: int) -> None:
        """Hide messages older than `message_id` from `history` (they stay stored)."""
        await self._write(UPSERT_FLOOR, (*_key(key), time.time(), message_id),
                          lambda _: self._history.drop(key))

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation's messages and its context floor; return how many
        messages were deleted. Its verdicts stay, detached from the messages."""

        def job(db: sqlite3.Connection) -> int:
            deleted = db.execute(DELETE_MESSAGES, _key(key)).rowcount
            db.execute(RESET_FLOOR, _key(key))
            return deleted

        return await self._writer.write(job, lambda _: self._history.drop(key), long=True)

    async def get_channel_persona(self, key: ConversationKey) -> str | None:
        """The persona override of the key's channel (shared by all its threads); read
        once, then remembered (see `_channel`)."""
        return (await self._channel(key)).get(("persona", ""))

    async def set_channel_persona(self, key: ConversationKey, persona: str | None) -> None:
        """Set (or with None, reset) the persona override of a channel."""
        await self._write(UPSERT_PERSONA, (key.platform, key.channel, persona))
        self._remember(key, ("persona", ""), persona)

    async def get_channel_flag(self, key: ConversationKey, name: str) -> str | None:
        """A per-channel setting (shared by the channel's threads), or None; remembered."""
        return (await self._channel(key)).get(("flag", name))

    async def set_channel_flag(self, key: ConversationKey, name: str, value: str | None) -> None:
        """Set (or with None, clear) a per-channel setting."""
        if value is None:
            await self._write(DELETE_FLAG, (key.platform, key.channel, name))
        else:
            await self._write(UPSERT_FLAG, (key.platform, key.channel, name, value))
        self._remember(key, ("flag", name), value)

    async def _channel(self, key: ConversationKey) -> dict[tuple[str, str], str | None]:
        """Every persona and flag of the key's channel by (kind, name): read in one query
        the first time, then remembered (see `_channels`)."""
        where = (key.platform, key.channel)
        found = self._channels.get(where)
        if found is None and self._every_channel is None:
            await self._read_every_channel()
            found = self._channels.get(where)
        if found is None and self._every_channel:
            found = self._channels[where] = {}  # no setting: read whole, it would be there
        if found is None:
            writes = self._setting_writes
            rows = await self._fetch(SELECT_CHANNEL_SETTINGS, where)
            found = {(kind, name): value for kind, name, value in rows}
            if writes == self._setting_writes:  # else a write may have come after the read
                self._channels[where] = found
        return found

    async def _read_every_channel(self) -> None:
        """Every channel's settings in one read, up to EVERY_CHANNEL_ROWS rows (more: each
        channel is read on its own, as it comes). Once; again after a channel moved."""
        async with self._every_channel_lock:
            if self._every_channel is not None:
                return
            writes = self._setting_writes
            rows = await self._fetch(SELECT_EVERY_CHANNEL_SETTING, (EVERY_CHANNEL_ROWS + 1,))
            if writes != self._setting_writes or len(rows) > EVERY_CHANNEL_ROWS:
                self._every_channel = False if len(rows) > EVERY_CHANNEL_ROWS else None
                return
            every: dict[tuple[str, str], dict[tuple[str, str], str | None]] = {}
            for platform, channel, kind, name, value in rows:
                every.setdefault((platform, channel), {})[(kind, name)] = value
            for where, settings in every.items():
                self._channels.setdefault(where, settings)  # one read since is as new
            self._every_channel = True

    def _remember(self, key: ConversationKey, setting: tuple[str, str], value: str | None) -> None:
        """A setting of the key's channel was written (committed)."""
        self._setting_writes += 1
        found = self._channels.get((key.platform, key.channel))
        if found is not None:
            found[setting] = value
        elif self._every_channel:  # a channel's first setting: `_channel` would take it for none
            self._channels[(key.platform, key.channel)] = {setting: value}

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool:
        """Move a channel's conversations, persona, flags and words to its new id, merging
        into what the new id has, in one transaction (see `ChannelSettings.move_channel`)."""
        if old_channel == new_channel:
            return False
        scopes = (word_scope(platform, old_channel), word_scope(platform, new_channel))

        def job(db: sqlite3.Connection) -> bool:
            conversations = db.execute(SELECT_CHANNEL_CONVERSATIONS, (platform, old_channel)).fetchall()
            for conversation_id, thread, floor in conversations:
                to = ConversationKey(platform, new_channel, thread)
                _move_conversation(db, (conversation_id, floor), old_channel, to)
            changed = len(conversations)
            for statement in MOVE_SETTINGS:
                changed += db.execute(statement, (platform, old_channel, new_channel)).rowcount
            for statement in MOVE_WORDS:
                changed += db.execute(statement, scopes).rowcount
            forget_channel(self._conversation_ids, platform, old_channel)
            return changed > 0

        try:
            return await self._writer.write(job, self._changed_many, long=True)
        finally:
            self._setting_writes += 1
            self._channels.clear()  # persona and flags moved with the channel
            self._every_channel = None

    async def add_word(self, rule: WordRule) -> None:
        """Add or replace an admin's moderation word in its scope."""
        await self._write(UPSERT_WORD, (rule.scope, rule.word, rule.action, rule.category))

    async def remove_word(self, scope: str, word: str) -> bool:
        """Remove a moderation word; False when it was not there."""
        return await self._write_count(DELETE_WORD, (scope, word)) > 0

    async def words(self) -> list[WordRule]:
        """Every admin moderation word, in insertion order."""
        return [WordRule(*row) for row in await self._fetch(SELECT_WORDS, ())]

    async def get_setting(self, name: str) -> str | None:
        """A global setting, or None when it was never set."""
        rows = await self._fetch(SELECT_SETTING, (name,))
        return rows[0][0] if rows else None

    async def set_setting(self, name: str, value: str) -> None:
        """Create or replace a global setting."""
        await self._write(UPSERT_SETTING, (name, value))

    async def add_verdict(
        self,
        key: ConversationKey,
        message_id: int | None,
        direction: str,
        verdict: Verdict,
    ) -> int:
        """Record a moderation verdict, optionally about one stored message; return
        its id. Raises ValueError when `message_id` names no stored message."""

        def committed(_: int) -> None:
            if direction == "input" and verdict.flagged and message_id is not None:
                self._history.flagged(message_id)

        try:
            return await self._writer.write(self._verdict_job(key, message_id, direction, verdict), committed)
        except sqlite3.IntegrityError as error:  # the foreign key on messages
            raise ValueError(f"no stored message has id {message_id}") from error

    async def log_verdict(
        self, key: ConversationKey, message_id: int | None, direction: str, verdict: Verdict
    ) -> None:
        """Queue a verdict for the next transaction (see `VerdictLog.log_verdict`); a flagged
        input is stored at once, since it hides its message from history."""
        if direction == "input" and verdict.flagged:
            await self.add_verdict(key, message_id, direction, verdict)
            return
        job = self._verdict_job(key, message_id, direction, verdict)
        self._writer.write_later(job, f"a {direction} verdict")

    def _verdict_job(
        self, key: ConversationKey, message_id: int | None, direction: str, verdict: Verdict
    ) -> Callable[[sqlite3.Connection], int]:
        def job(db: sqlite3.Connection) -> int:
            values = _verdict_values(self._conversation_id(db, key), message_id, direction, verdict)
            new_id = int(_value(db, INSERT_VERDICT, values))
            if direction == "input" and verdict.flagged and message_id is not None:
                db.execute(FLAG_MESSAGE, (message_id,))
            return new_id

        return job

    async def verdicts(self, key: ConversationKey) -> list[tuple[int | None, str, Verdict]]:
        """(message_id, direction, verdict) for a conversation, oldest first, including
        the verdicts `log_verdict` queued before this call."""
        await self._writer.settled()
        rows = await self._fetch(SELECT_VERDICTS, _key(key))
        return [verdict_from_row(row) for row in rows]

    async def add_usage(self, rows: Sequence[Usage]) -> None:
        """Add each row's counts to the stored ones, in one transaction."""
        if rows:
            values = [usage_values(row) for row in rows]
            await self._writer.write(lambda db: db.executemany(ADD_USAGE, values).rowcount,
                                     long=len(values) > LONG_USAGE_ROWS)

    async def usage(
        self, since: str, *, platform: str | None = None, channel: str | None = None,
        author_id: str | None = None,
    ) -> list[Usage]:
        """Rows of day `since` and later matching the filters, by day, platform, channel, author."""
        rows = await self._fetch(SELECT_USAGE, (since, platform, channel, author_id))
        return [Usage(*row) for row in rows]

    async def recent_conversations(
        self, platform: str, since: float, limit: int = 100
    ) -> list[tuple[ConversationKey, str | None]]:
        """Conversations with a user message since `since`, most recently active first, each
        with its newest user message's platform id (see `RecentActivity`)."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        rows = await self._fetch(SELECT_RECENT_CONVERSATIONS, (platform, since, limit))
        return [(ConversationKey(platform, channel, thread), newest) for channel, thread, newest, _ in rows]

    async def channels_with_flag(self, platform: str, name: str) -> list[str]:
        """The channels of `platform` whose flag `name` is set, in channel order."""
        return [row[0] for row in await self._fetch(SELECT_FLAGGED_CHANNELS, (platform, name))]

    async def message_count(self) -> int:
        """How many messages are stored, in all conversations."""
        rows = await self._fetch("SELECT COUNT(*) FROM messages", ())
        return int(rows[0][0])

    async def prune_verdicts(self, before: float, limit: int) -> int:
        """Delete the verdicts recorded before `before` among the `limit` oldest; how many."""
        return await self._write_count(PRUNE_VERDICTS, (before, limit), long=True)

    async def prune_usage(self, before: str, limit: int) -> int:
        """Delete up to `limit` usage rows of days before `before` (`YYYY-MM-DD`); how many."""
        return await self._write_count(PRUNE_USAGE, (before, limit), long=True)

    async def prune_messages(self, before: float, limit: int) -> int:
        """Delete the messages older than `before` among the `limit` oldest not `pending`,
        keeping a question whose reply is younger (see `Retention.prune_messages`); how many."""
        return await self._write_count(PRUNE_MESSAGES, (before, limit), self._changed_many, long=True)

    async def export_messages(
        self, after_id: int, limit: int, *, platform: str | None = None, channel: str | None = None,
        thread: str | None = None,
    ) -> list[tuple[ConversationKey, StoredMessage]]:
        """Up to `limit` messages with ids above `after_id`, by id, with their conversations,
        only those of `platform`, `channel`, `thread` where given (see `OwnerData`)."""
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        rows = await self._fetch(EXPORT_MESSAGES, (after_id, platform, channel, thread, limit))
        return [(ConversationKey(*row[:3]), StoredMessage.from_row(row[3:])) for row in rows]

    async def forget_user(self, platform: str, author_id: str) -> Forgotten:
        """Delete one person's messages, the replies to them, their verdicts and usage rows (see
        `OwnerData.forget_user`). Found on the reader first (scans, without the write lock),
        then deleted in one transaction with what the person wrote, or was answered, since."""
        high = int((await self._fetch(MAX_MESSAGE_ID, ()))[0][0])
        theirs = {row[0] for row in await self._fetch(SELECT_THEIRS, (platform, author_id, 0))}
        replies = {row[0] for row in await self._fetch(SELECT_REPLIES_TO, (0, json.dumps(sorted(theirs))))}

        def job(db: sqlite3.Connection) -> Forgotten:
            mine = theirs | _ids(db, SELECT_THEIRS, (platform, author_id, high))
            answers = replies | _ids(db, SELECT_REPLIES_TO, (high, json.dumps(sorted(mine))))
            doomed = json.dumps(sorted(mine | answers))
            verdicts = db.execute(DELETE_VERDICTS_OF, (doomed,)).rowcount
            deleted = [db.execute(DELETE_MESSAGES_BY_ID, (json.dumps(sorted(ids)),)).rowcount
                       for ids in (mine, answers)]
            usage = db.execute(DELETE_USAGE_OF, (platform, author_id)).rowcount
            return Forgotten(deleted[0], deleted[1], verdicts, usage)

        return await self._writer.write(job, self._changed_many, long=True)

    async def claim_lease(self, name: str, holder: str, ttl_s: float, *, replacing: str = "") -> Lease:
        """Take or renew lease `name` for `holder` (see `Leases.claim_lease`); the lease as it
        stands afterwards."""

        def job(db: sqlite3.Connection) -> Lease:
            now = time.time()
            db.execute(CLAIM_LEASE, (name, holder, now + ttl_s, now, replacing))
            held_by, until = db.execute(SELECT_LEASE, (name,)).fetchone()
            return Lease(name, held_by, until)

        return await self._writer.write(job)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease `name` up, if `holder` holds it."""
        await self._write(RELEASE_LEASE, (name, holder))

    def _connect_writer(self) -> sqlite3.Connection:
        """The writer's connection, configured and migrated (on its thread). Its busy
        timeout is then 0: a transaction that may wait sets it around its BEGIN
        (`bot.store.sqlite_threads`), so one on the event loop's thread never waits."""
        db = _connect(self._path, self._busy_timeout_ms, PRAGMAS)
        try:
            _migrate(db, self._migrations)
            db.execute("PRAGMA busy_timeout = 0")
            # A restarted WAL's file is cut back to this at the next commit (bot.store.sqlite_wal).
            db.execute(f"PRAGMA journal_size_limit = {self._wal_limit:d}")
        except BaseException:
            db.close()
            raise
        return db

    def _conversation_id(self, db: sqlite3.Connection, key: ConversationKey) -> int:
        """The conversation's row id, inserting the row the first time (holding the writer's connection)."""
        return self._conversation(db, key)[0]

    def _conversation(self, db: sqlite3.Connection, key: ConversationKey) -> tuple[int, bool]:
        """The conversation's row id, and whether its row was inserted just now (holding the
        writer's connection)."""
        created = False
        if key not in self._conversation_ids:
            created = db.execute(INSERT_CONVERSATION, (*_key(key), time.time())).rowcount == 1
            self._conversation_ids[key] = int(_value(db, SELECT_CONVERSATION, _key(key)))
        return self._conversation_ids[key], created

    def _forget_ids(self) -> None:
        """Something was rolled back: a remembered conversation id may name no row."""
        self._conversation_ids.clear()

    def _began(self, db: sqlite3.Connection) -> None:
        """A write transaction began (holding the writer's connection and the write lock): when another
        connection committed since the last one, every history window is dropped."""
        version = int(_value(db, DATA_VERSION, ()))
        if self._data_version is not None and version != self._data_version:
            self._history.changed_elsewhere()
        self._data_version = version

    def _changed_many(self, changed: object) -> None:
        """A write that may touch any conversation committed: history is read again."""
        if changed:
            self._history.clear()

    async def _write(
        self, sql: str, params: Sequence[Any], committed: Callable[[int], None] | None = None
    ) -> None:
        await self._write_count(sql, params, committed)

    async def _write_count(
        self, sql: str, params: Sequence[Any], committed: Callable[[int], None] | None = None, *,
        long: bool = False,
    ) -> int:
        """How many rows one writing statement changed; `committed(count)` once committed
        (`long`: see `SqliteGroupCommit.write`)."""
        return await self._writer.write(lambda db: db.execute(sql, params).rowcount, committed, long=long)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """All rows of one query, on the reader's connection."""
        return await self._reader.execute_fetchall(sql, params)

    async def _checkpoint_regularly(self) -> None:
        """Fold the WAL back into the database every couple of seconds, and start it over
        when it grows past its limit, or truncate it when the store is idle
        (`bot.store.sqlite_wal`). The passive checkpoints run on a connection of their own
        (its own thread), so no message pays for them; a RESTART or TRUNCATE, which writers
        wait for anyway, on the writer's."""
        checkpointer = SqliteThread("sqlite-checkpointer")
        await checkpointer.open(self._connect_checkpointer)
        keeper = WalKeeper(checkpointer, self._path, self._wal_limit,
                           functools.partial(self._writer_thread.run, self._writer_checkpoint))
        self._wal.over_limit = keeper.past_limit
        keeper.nudge()  # the first look at once: writes made before it may have passed the limit
        try:
            await keeper.run(self._checkpoint_interval)
        finally:
            self._wal.over_limit = None
            await checkpointer.close()

    def _connect_checkpointer(self) -> sqlite3.Connection:
        """The checkpointer's own connection (on its thread), giving up on a lock sooner
        than a writer waiting behind it would (CHECKPOINT_BUSY_TIMEOUT)."""
        db = _connect(self._path, self._busy_timeout_ms)
        try:
            db.execute(CHECKPOINT_BUSY_TIMEOUT)
        except BaseException:
            db.close()
            raise
        return db

    def _writer_checkpoint(self, db: sqlite3.Connection, pragma: str) -> list[Any]:
        """A RESTART or TRUNCATE checkpoint on the writer's connection, between its
        transactions (writer's thread; see `WalKeeper`), giving up as soon as the
        checkpointer's own connection would."""
        db.execute(CHECKPOINT_BUSY_TIMEOUT)
        try:
            return db.execute(pragma).fetchall()
        finally:
            db.execute("PRAGMA busy_timeout = 0")  # as `_connect_writer` leaves it


def _connect(path: Path, busy_timeout_ms: int, pragmas: Sequence[str] = ()) -> sqlite3.Connection:
    """A connection for one thread. isolation_level=None: transactions are begun
    explicitly (sqlite3's implicit ones would open behind our back)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in pragmas:
            db.execute(pragma).fetchall()
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Apply the migrations the file lacks, all in one transaction. BEGIN IMMEDIATE takes
    SQLite's write lock before the version is read, so two processes cannot both migrate."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = int(_value(db, "PRAGMA user_version", ()) or 0)
        if found > len(migrations):
            raise SchemaTooNewError(found, len(migrations))
        for script in migrations[found:]:
            for statement in _statements(script):
                db.execute(statement)
        if found < len(migrations):  # PRAGMA takes no parameters
            db.execute(f"PRAGMA user_version = {len(migrations):d}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _move_conversation(
    db: sqlite3.Connection, row: tuple[int, int], old_channel: str, to: ConversationKey
) -> None:
    """One conversation (id, context floor) of `old_channel` to `to`: renamed, or merged
    into the row `to` has already."""
    conversation_id, floor = row
    db.execute(QUALIFY_PLATFORM_IDS, (old_channel, conversation_id))
    target = _value(db, SELECT_CONVERSATION, _key(to))
    if target is None:
        db.execute(RENAME_CONVERSATION, (to.channel, conversation_id))
        return
    for statement in (MERGE_MESSAGES, MERGE_VERDICTS):
        db.execute(statement, (target, conversation_id))
    db.execute(RAISE_FLOOR, (floor, target))
    db.execute(DELETE_CONVERSATION, (conversation_id,))


def _value(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """The first column of the first row, or None when there is no row."""
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements, because executescript() would COMMIT the
    open transaction first. sqlite3 knows where a trigger body ends."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending  # only comments; anything else fails loudly as incomplete


def _key(key: ConversationKey) -> tuple[str, str, str]:
    return (key.platform, key.channel, key.thread)


def _ids(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> set[int]:
    """The first column of every row: ids."""
    return {int(row[0]) for row in db.execute(sql, params)}


def _verdict_values(
    conversation_id: int, message_id: int | None, direction: str, verdict: Verdict
) -> tuple[Any, ...]:
    categories, scores = verdict_columns(verdict)
    flagged = int(verdict.flagged)
    return (conversation_id, message_id, direction, verdict.layer, flagged,
            categories, scores, verdict.action, time.time())
