"""The PostgreSQL store: an asyncpg pool, migrated under an advisory lock.

Chosen with HEARTH_DATABASE_URL=postgresql://…; several Hearth processes may share
one database (see `Conversations.claim_pending`). The schema is `postgres_schema`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import asyncpg

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
from bot.store import postgres_schema as sql
from bot.store.base import Forgotten, Lease
from bot.store.faults import StoreHealth, retried_on
from bot.store.postgres_commit import PgGroupCommit
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
from bot.store.sqlite import SchemaTooNewError
from engine.types import Role

POOL_SIZE = 4
CONNECT_TIMEOUT_S = 10.0
# A statement that runs longer than this fails rather than hang its task for good.
COMMAND_TIMEOUT_S = 30.0
# The server, not the statement, failed: unreachable, restarting, shut down, out of
# disk or connections. (OSError covers refused connections and timeouts.)
FAULTS = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def is_fault(exc: BaseException) -> bool:
    """Whether `exc` is the database failing (retry later), not a bug in a statement."""
    if isinstance(exc, asyncpg.InterfaceError):  # a connection the server closed under us
        return "closed" in str(exc)
    return isinstance(exc, FAULTS)


def describe(exc: BaseException) -> str:
    """The driver's word for a fault, first line only (asyncpg never quotes the password)."""
    return (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]


@retried_on(is_fault, describe)
class PostgresStore:
    """The `Store` in a PostgreSQL database, shared by all of the bot's tasks.

    A small pool serves the tasks, each statement or transaction on a connection of
    its own, and replaces connections the server dropped. Storing a message (and a
    verdict, and moving a channel) is the exception: it goes through group commit
    (`bot.store.postgres_commit`), so ids follow the order the tasks called in, as in
    `SqliteStore` (on a pool, a later call could overtake an earlier one), and the
    writes of many channels share a transaction. Query parameters of the URL that asyncpg does not know become
    server settings: `?search_path=hearth` keeps the tables in a schema of their own.
    """

    def __init__(
        self, url: str, *, migrations: Sequence[str] = sql.MIGRATIONS, pool_size: int = POOL_SIZE
    ) -> None:
        self._url = url
        self._migrations = tuple(migrations)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._lifecycle = asyncio.Lock()
        # Conversation rows are deleted only by `move_channel`, which forgets their ids,
        # so ids can be remembered; forgotten on any rollback (an id may name no row then).
        self._conversation_ids: dict[ConversationKey, int] = {}
        self._writes = PgGroupCommit(self._connections, is_fault, self._conversation_ids.clear)
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
        """Group-commit transactions committed so far (fewer than writes under load)."""
        return self._writes.transactions

    async def open(self) -> None:
        """Connect and apply missing migrations; a no-op when already open."""
        async with self._lifecycle:
            if self._pool is None:
                self._pool = await self._connect()

    async def close(self) -> None:
        """Let running statements finish, then disconnect; a no-op when closed."""
        async with self._lifecycle:
            await self._writes.close()
            pool, self._pool = self._pool, None
            self._conversation_ids.clear()
            if pool is not None:
                await pool.close()  # waits for every acquired connection to come back

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
        was already stored in this conversation (a duplicate delivery, even one
        another process stored). See `Conversations.add_message`."""
        check_role(role)
        tokens = (prompt_tokens, cached_tokens, reply_tokens, reply_to)
        extra = (status or default_status(role), meta_json(meta), owner)
        values = (role, author_id, author_name, text, time.time(), platform_message_id)

        async def job(db: asyncpg.Connection) -> int | None:
            conversation_id = await self._conversation_id(key, db)
            new_id = await db.fetchval(sql.INSERT_MESSAGE, conversation_id, *values, *tokens, *extra)
            if new_id is not None and question_status is not None and reply_to is not None:
                await db.execute(sql.SET_STATUS, question_status, reply_to)
            return None if new_id is None else int(new_id)

        return await self._writes.write(job)

    async def set_status(self, message_id: int, status: MessageStatus) -> None:
        """Record how a message ended (see `MessageStatus`); nothing when it was deleted."""
        await self._connections().execute(sql.SET_STATUS, status, message_id)

    async def note_shown(self, message_id: int, platform_ids: Sequence[str]) -> None:
        """Remember which platform messages show the reply to `message_id` while it streams,
        so a reply a crash cut can be found and marked after the restart."""
        await self._connections().execute(sql.NOTE_SHOWN, json.dumps(list(platform_ids)), message_id)

    async def pending(self, since: float) -> list[PendingMessage]:
        """User messages still `pending` that arrived at or after `since` (Unix time), oldest first."""
        rows = await self._connections().fetch(sql.SELECT_PENDING, float(since))
        return [pending_from_row(row) for row in rows]

    async def claim_pending(self, since: float, owner: str) -> list[PendingMessage]:
        """Claim for `owner` the `pending` user messages at or after `since` that no
        other owner holds, oldest first: one statement (see `sql.CLAIM_PENDING`)."""
        rows = await self._connections().fetch(sql.CLAIM_PENDING, owner, float(since))
        return sorted((pending_from_row(row) for row in rows), key=lambda pending: pending.id)

    async def skip_pending(self, before: float) -> int:
        """Mark `pending` user messages older than `before` (Unix time) `skipped`; how many."""
        return _row_count(await self._connections().execute(sql.SKIP_PENDING, float(before)))

    async def undelivered(self, since: float, owner: str) -> list[Undelivered]:
        """`undelivered` replies of `owner` at or after `since`, oldest first."""
        rows = await self._connections().fetch(sql.SELECT_UNDELIVERED, float(since), owner)
        return [undelivered_from_row(row) for row in rows]

    async def expire_undelivered(self, before: float) -> int:
        """Mark `undelivered` replies older than `before` `skipped`; how many."""
        return _row_count(await self._connections().execute(sql.EXPIRE_UNDELIVERED, float(before)))

    async def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """An `undelivered` reply is `answered` now, with its first part's id unless it had one."""
        await self._connections().execute(sql.MARK_DELIVERED, platform_message_id, message_id)

    async def history(self, key: ConversationKey, limit: int = 200) -> list[StoredMessage]:
        """The newest `limit` messages whose turn is at or after the context floor,
        ordered by turn (see `StoredMessage.turn`), then id; only `pending` and
        `answered` ones the moderation gate did not flag."""
        if limit <= 0:  # PostgreSQL refuses a negative LIMIT
            return []
        rows = await self._connections().fetch(sql.SELECT_HISTORY, *_key(key), limit)
        return [StoredMessage.from_row(row) for row in reversed(rows)]

    async def set_context_floor(self, key: ConversationKey, message_id: int) -> None:
        """Hide messages older than `message_id` from `history` (they stay stored)."""
        await self._connections().execute(sql.UPSERT_FLOOR, *_key(key), time.time(), message_id)

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation's messages and its context floor; return how many
        messages were deleted. Its verdicts stay, detached from the messages."""
        async with self._connections().acquire() as db, db.transaction():
            deleted = _row_count(await db.execute(sql.DELETE_MESSAGES, *_key(key)))
            await db.execute(sql.RESET_FLOOR, *_key(key))
        return deleted

    async def get_channel_persona(self, key: ConversationKey) -> str | None:
        """The persona override of the key's channel (shared by all its threads)."""
        return await self._text(sql.SELECT_PERSONA, key.platform, key.channel)

    async def set_channel_persona(self, key: ConversationKey, persona: str | None) -> None:
        """Set (or with None, reset) the persona override of a channel."""
        await self._connections().execute(sql.UPSERT_PERSONA, key.platform, key.channel, persona)

    async def get_channel_flag(self, key: ConversationKey, name: str) -> str | None:
        """A per-channel setting (shared by the channel's threads), or None."""
        return await self._text(sql.SELECT_FLAG, key.platform, key.channel, name)

    async def set_channel_flag(self, key: ConversationKey, name: str, value: str | None) -> None:
        """Set (or with None, clear) a per-channel setting."""
        if value is None:
            await self._connections().execute(sql.DELETE_FLAG, key.platform, key.channel, name)
        else:
            await self._connections().execute(sql.UPSERT_FLAG, key.platform, key.channel, name, value)

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool:
        """Move a channel's conversations, persona, flags and words to its new id, merging
        into what the new id has, in one transaction (see `ChannelSettings.move_channel`).
        A write of group commit, so this process's messages are stored before or after it,
        never beside it, and its remembered ids stay right."""
        if old_channel == new_channel:
            return False
        scopes = (word_scope(platform, old_channel), word_scope(platform, new_channel))

        async def job(db: asyncpg.Connection) -> int:
            conversations = await db.fetch(sql.SELECT_CHANNEL_CONVERSATIONS, platform, old_channel)
            for conversation_id, thread, floor in conversations:
                to = ConversationKey(platform, new_channel, thread)
                await _move_conversation(db, (conversation_id, floor), old_channel, to)
            changed = len(conversations)
            for statement in sql.MOVE_SETTINGS:
                changed += _row_count(await db.execute(statement, platform, old_channel, new_channel))
            for statement in sql.MOVE_WORDS:
                changed += _row_count(await db.execute(statement, *scopes))
            forget_channel(self._conversation_ids, platform, old_channel)
            return changed

        return await self._writes.write(job) > 0

    async def add_word(self, rule: WordRule) -> None:
        """Add or replace an admin's moderation word in its scope."""
        await self._connections().execute(sql.UPSERT_WORD, rule.scope, rule.word, rule.action, rule.category)

    async def remove_word(self, scope: str, word: str) -> bool:
        """Remove a moderation word; False when it was not there."""
        return _row_count(await self._connections().execute(sql.DELETE_WORD, scope, word)) > 0

    async def words(self) -> list[WordRule]:
        """Every admin moderation word, in insertion order."""
        return [WordRule(*row) for row in await self._connections().fetch(sql.SELECT_WORDS)]

    async def get_setting(self, name: str) -> str | None:
        """A global setting, or None when it was never set."""
        return await self._text(sql.SELECT_SETTING, name)

    async def set_setting(self, name: str, value: str) -> None:
        """Create or replace a global setting."""
        await self._connections().execute(sql.UPSERT_SETTING, name, value)

    async def add_verdict(
        self,
        key: ConversationKey,
        message_id: int | None,
        direction: str,
        verdict: Verdict,
    ) -> int:
        """Record a moderation verdict, optionally about one stored message; return
        its id. Raises ValueError when `message_id` names no stored message."""

        async def job(db: asyncpg.Connection) -> int:
            # A write of group commit, like storing a message: a channel moved in between
            # (move_channel) may have removed the conversation the id named.
            values = _verdict_values(await self._conversation_id(key, db), message_id, direction, verdict)
            new_id = int(await db.fetchval(sql.INSERT_VERDICT, *values))
            if direction == "input" and verdict.flagged and message_id is not None:
                await db.execute(sql.FLAG_MESSAGE, message_id)
            return new_id

        try:
            return await self._writes.write(job)
        except asyncpg.ForeignKeyViolationError as error:
            raise ValueError(f"no stored message has id {message_id}") from error

    async def log_verdict(
        self, key: ConversationKey, message_id: int | None, direction: str, verdict: Verdict
    ) -> None:
        """`add_verdict`, awaited (see `VerdictLog.log_verdict`)."""
        await self.add_verdict(key, message_id, direction, verdict)

    async def verdicts(self, key: ConversationKey) -> list[tuple[int | None, str, Verdict]]:
        """(message_id, direction, verdict) for a conversation, oldest first."""
        rows = await self._connections().fetch(sql.SELECT_VERDICTS, *_key(key))
        return [verdict_from_row(row) for row in rows]

    async def add_usage(self, rows: Sequence[Usage]) -> None:
        """Add each row's counts to the stored ones, in one transaction. Rows are sorted
        by key first, so two processes adding at once never deadlock on each other's rows."""
        values = sorted(usage_values(row) for row in rows)
        if values:
            async with self._connections().acquire() as db, db.transaction():
                await db.executemany(sql.ADD_USAGE, values)

    async def usage(
        self, since: str, *, platform: str | None = None, channel: str | None = None,
        author_id: str | None = None,
    ) -> list[Usage]:
        """Rows of day `since` and later matching the filters, by day, platform, channel, author."""
        rows = await self._connections().fetch(sql.SELECT_USAGE, since, platform, channel, author_id)
        return [Usage(*row) for row in rows]

    async def recent_conversations(
        self, platform: str, since: float, limit: int = 100
    ) -> list[tuple[ConversationKey, str | None]]:
        """Conversations with a user message since `since`, most recently active first, each
        with its newest user message's platform id (see `RecentActivity`)."""
        if limit <= 0:  # PostgreSQL refuses a negative LIMIT
            return []
        rows = await self._connections().fetch(sql.SELECT_RECENT_CONVERSATIONS, platform, float(since), limit)
        return [(ConversationKey(platform, channel, thread), newest) for channel, thread, newest in rows]

    async def channels_with_flag(self, platform: str, name: str) -> list[str]:
        """The channels of `platform` whose flag `name` is set, in channel order."""
        rows = await self._connections().fetch(sql.SELECT_FLAGGED_CHANNELS, platform, name)
        return [str(row[0]) for row in rows]

    async def message_count(self) -> int:
        """How many messages are stored, in all conversations."""
        return int(await self._connections().fetchval(sql.COUNT_MESSAGES))

    async def prune_verdicts(self, before: float, limit: int) -> int:
        """Delete the verdicts recorded before `before` among the `limit` oldest; how many."""
        return _row_count(await self._connections().execute(sql.PRUNE_VERDICTS, float(before), limit))

    async def prune_usage(self, before: str, limit: int) -> int:
        """Delete up to `limit` usage rows of days before `before` (`YYYY-MM-DD`); how many."""
        return _row_count(await self._connections().execute(sql.PRUNE_USAGE, before, limit))

    async def prune_messages(self, before: float, limit: int) -> int:
        """Delete the messages older than `before` among the `limit` oldest not `pending`,
        keeping a question whose reply is younger (see `Retention.prune_messages`); how many."""
        return _row_count(await self._connections().execute(sql.PRUNE_MESSAGES, float(before), limit))

    async def export_messages(
        self, after_id: int, limit: int, *, platform: str | None = None, channel: str | None = None,
        thread: str | None = None,
    ) -> list[tuple[ConversationKey, StoredMessage]]:
        """Up to `limit` messages with ids above `after_id`, by id, with their conversations,
        only those of `platform`, `channel`, `thread` where given (see `OwnerData`)."""
        if limit <= 0:  # PostgreSQL refuses a negative LIMIT
            return []
        where = (platform, channel, thread)
        rows = await self._connections().fetch(sql.EXPORT_MESSAGES, after_id, *where, limit)
        return [(ConversationKey(*row[:3]), StoredMessage.from_row(row[3:])) for row in rows]

    async def forget_user(self, platform: str, author_id: str) -> Forgotten:
        """Delete one person's messages, the replies to them, their verdicts and usage rows, in
        one transaction (see `OwnerData.forget_user`)."""
        async with self._connections().acquire() as db, db.transaction():
            mine = [row[0] for row in await db.fetch(sql.SELECT_THEIRS, platform, author_id)]
            answers = [row[0] for row in await db.fetch(sql.SELECT_REPLIES_TO, mine)]
            verdicts = _row_count(await db.execute(sql.DELETE_VERDICTS_OF, mine + answers))
            messages = _row_count(await db.execute(sql.DELETE_MESSAGES_BY_ID, mine))
            replies = _row_count(await db.execute(sql.DELETE_MESSAGES_BY_ID, answers))
            usage = _row_count(await db.execute(sql.DELETE_USAGE_OF, platform, author_id))
        return Forgotten(messages, replies, verdicts, usage)

    async def claim_lease(self, name: str, holder: str, ttl_s: float, *, replacing: str = "") -> Lease:
        """Take or renew lease `name` for `holder` (see `Leases.claim_lease`), in one transaction."""
        now = time.time()
        async with self._connections().acquire() as db, db.transaction():
            await db.execute(sql.CLAIM_LEASE, name, holder, now + ttl_s, now, replacing)
            held_by, until = await db.fetchrow(sql.SELECT_LEASE, name)
        return Lease(name, held_by, until)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease `name` up, if `holder` holds it."""
        await self._connections().execute(sql.RELEASE_LEASE, name, holder)

    async def _connect(self) -> asyncpg.Pool:
        """A new pool, its database migrated; closed again if that fails."""
        pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=self._pool_size,
            timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S,
        )
        try:
            async with pool.acquire() as db:
                await self._migrate(db)
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _migrate(self, db: asyncpg.Connection) -> None:
        """Apply the migrations the database lacks, all in one transaction (DDL is
        transactional in PostgreSQL). The advisory lock, taken before the version is
        read, makes a second process starting at once wait, then find nothing to do."""
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", sql.MIGRATION_LOCK)
            await db.execute(sql.CREATE_VERSION_TABLE)
            found = int(await db.fetchval(sql.SELECT_VERSION) or 0)
            if found > len(self._migrations):
                raise SchemaTooNewError(found, len(self._migrations))
            for script in self._migrations[found:]:
                await db.execute(script)  # no arguments: several statements may run at once
            if found < len(self._migrations):
                await db.execute(sql.CLEAR_VERSION)
                await db.execute(sql.INSERT_VERSION, len(self._migrations))

    async def _conversation_id(self, key: ConversationKey, db: asyncpg.Connection) -> int:
        """The conversation's row id, inserting the row the first time (in the caller's
        transaction on `db`: a rollback forgets the ids). Two statements: the SELECT sees
        the row even when another process inserted it."""
        if key not in self._conversation_ids:
            await db.execute(sql.INSERT_CONVERSATION, *_key(key), time.time())
            self._conversation_ids[key] = int(await db.fetchval(sql.SELECT_CONVERSATION, *_key(key)))
        return self._conversation_ids[key]

    async def _text(self, query: str, *args: object) -> str | None:
        """The first column of the first row (a TEXT one), or None when there is no row."""
        value = await self._connections().fetchval(query, *args)
        return None if value is None else str(value)

    def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool


def _key(key: ConversationKey) -> tuple[str, str, str]:
    return (key.platform, key.channel, key.thread)


async def _move_conversation(
    db: asyncpg.Connection, row: tuple[int, int], old_channel: str, to: ConversationKey
) -> None:
    """One conversation (id, context floor) of `old_channel` to `to`: renamed, or merged
    into the row `to` has already."""
    conversation_id, floor = row
    await db.execute(sql.QUALIFY_PLATFORM_IDS, old_channel, conversation_id)
    target = await db.fetchval(sql.SELECT_CONVERSATION, *_key(to))
    if target is None:
        await db.execute(sql.RENAME_CONVERSATION, to.channel, conversation_id)
        return
    for statement in (sql.MERGE_MESSAGES, sql.MERGE_VERDICTS):
        await db.execute(statement, target, conversation_id)
    await db.execute(sql.RAISE_FLOOR, floor, target)
    await db.execute(sql.DELETE_CONVERSATION, conversation_id)


def _row_count(status: str) -> int:
    """How many rows a command touched, from its status tag ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


def _verdict_values(
    conversation_id: int, message_id: int | None, direction: str, verdict: Verdict
) -> tuple[Any, ...]:
    categories, scores = verdict_columns(verdict)
    return (conversation_id, message_id, direction, verdict.layer, verdict.flagged,
            categories, scores, verdict.action, time.time())
