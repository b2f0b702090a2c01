"""The SQLite store's schema and its own statements: the migrations, applied in order,
and the SQL only SQLite says this way (`bot.store.statements` holds what both stores
run). `bot.store.sqlite` holds the behaviour."""

from __future__ import annotations

# How long a connection waits for another's write lock (ms) before SQLITE_BUSY.
BUSY_TIMEOUT = "PRAGMA busy_timeout = 5000"
# The WAL's size past which it is checkpointed and truncated at once (bot.store.sqlite_wal).
WAL_LIMIT_BYTES = 16 * 2**20

PRAGMAS = (
    # A new database's page: 2 KiB, not SQLite's 4 KiB. Every commit writes each page it
    # touched whole into the WAL, and an answered message touches about 18 (its rows and
    # their indexes, in 3 transactions): 72 KB of WAL per message at 4 KiB pages. Measured
    # here (README, Storage): SqliteStore.add_message 24,500 → 29,300 a second, answered
    # messages one after another +6%, half as many WAL truncations, for 6% more file
    # (921 → 980 bytes per answered message). 1 KiB pages gave +34% and +10%, but 45% more
    # file. Set before anything else: only an empty database takes it (an existing one
    # keeps its page size; README says how to convert one).
    "PRAGMA page_size = 2048",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    BUSY_TIMEOUT,
    "PRAGMA foreign_keys = ON",
    # Checkpoints run from a background task on their own connection, not inside
    # whichever message's commit happens to cross the WAL threshold.
    "PRAGMA wal_autocheckpoint = 0",
    # A WAL that a writer starts over is cut back to this (see bot.store.sqlite_wal).
    f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES:d}",
)

# Applied in order, all missing ones in one transaction; PRAGMA user_version counts
# those applied. Append new scripts, never edit old ones, and never BEGIN or COMMIT
# in them. Message ids use AUTOINCREMENT so they are never reused after a reset:
# a context floor is an id, and a reused id would land under some other floor.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        thread TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        context_floor INTEGER NOT NULL DEFAULT 0,
        UNIQUE (platform, channel, thread)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL
            REFERENCES conversations (id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        author_id TEXT NOT NULL DEFAULT '',
        author_name TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        platform_message_id TEXT NULL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        reply_tokens INTEGER NOT NULL DEFAULT 0,
        UNIQUE (conversation_id, platform_message_id)
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE TABLE channel_settings (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        persona TEXT NULL,
        PRIMARY KEY (platform, channel)
    );
    CREATE TABLE global_settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE verdicts (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL
            REFERENCES conversations (id) ON DELETE CASCADE,
        message_id INTEGER NULL REFERENCES messages (id) ON DELETE SET NULL,
        direction TEXT NOT NULL,
        layer TEXT NOT NULL,
        flagged INTEGER NOT NULL,
        categories TEXT NOT NULL,
        category_scores TEXT NOT NULL,
        action TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX verdicts_by_conversation ON verdicts (conversation_id, id);
    -- Without it, every deleted message would scan verdicts for ON DELETE SET NULL.
    CREATE INDEX verdicts_by_message ON verdicts (message_id);
    """,
    """
    ALTER TABLE messages ADD COLUMN reply_to INTEGER NULL;
    CREATE INDEX messages_by_turn ON messages (conversation_id, COALESCE(reply_to, id), id);
    """,
    """
    CREATE TABLE channel_flags (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (platform, channel, name)
    );
    CREATE TABLE moderation_words (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL,
        word TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('block', 'allow')),
        category TEXT NOT NULL,
        UNIQUE (scope, word)
    );
    """,
    # Set with a flagged input verdict: history leaves such messages out, and a
    # column is much cheaper to test than a lookup in verdicts for every row.
    """
    ALTER TABLE messages ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET flagged = 1 WHERE id IN (
        SELECT message_id FROM verdicts WHERE direction = 'input' AND flagged);
    """,
    # Whether each message was answered (see bot.messages.MessageStatus), and what it
    # takes to answer a pending one after a restart. Earlier rows count as answered.
    """
    ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'answered';
    ALTER TABLE messages ADD COLUMN meta TEXT NULL;
    CREATE INDEX messages_pending ON messages (id) WHERE status = 'pending';
    """,
    # The process that answers a pending message, when several share one database
    # (see Conversations.claim_pending).
    """
    ALTER TABLE messages ADD COLUMN claimed_by TEXT NULL;
    """,
    # Daily usage per author and channel (see UsageLog): daily quotas hold across restarts.
    """
    CREATE TABLE usage (
        day TEXT NOT NULL,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        author_id TEXT NOT NULL,
        author_name TEXT NOT NULL DEFAULT '',
        messages INTEGER NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        reply_tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, platform, channel, author_id)
    );
    CREATE INDEX usage_by_author ON usage (platform, author_id, day);
    """,
    # Verdicts stored compactly (see bot.store.rows.verdict_columns): the flagged
    # categories' names, and the scores that round to more than zero at 3 decimals.
    # The freed pages are reused; `VACUUM` with Hearth stopped gives them back.
    """
    UPDATE verdicts SET
        categories = (SELECT json_group_array(key) FROM json_each(verdicts.categories) WHERE value),
        category_scores = (SELECT json_group_object(key, round(value, 3))
            FROM json_each(verdicts.category_scores) WHERE round(value, 3) <> 0);
    """,
    # Named leases (see Leases): one process per HEARTH_INSTANCE_NAME on a shared database.
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
)

NOTE_SHOWN = """
    UPDATE messages SET meta = json_set(COALESCE(meta, '{}'), '$.shown', json(?)) WHERE id = ?
"""
SELECT_PENDING = """
    SELECT m.id, c.platform, c.channel, c.thread, m.author_id, m.author_name, m.text,
        m.platform_message_id, m.created_at, m.meta
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE m.status = 'pending' AND m.role = 'user' AND m.created_at >= ?
    ORDER BY m.id
"""
CLAIM_PENDING = """
    UPDATE messages SET claimed_by = :owner
    WHERE status = 'pending' AND role = 'user' AND created_at >= :since
        AND (claimed_by IS NULL OR claimed_by = :owner)
"""
SELECT_CLAIMED = """
    SELECT m.id, c.platform, c.channel, c.thread, m.author_id, m.author_name, m.text,
        m.platform_message_id, m.created_at, m.meta
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE m.status = 'pending' AND m.role = 'user' AND m.created_at >= :since
        AND m.claimed_by = :owner
    ORDER BY m.id
"""
SELECT_CHANNEL_SETTINGS = """
    SELECT 'flag', name, value FROM channel_flags WHERE platform = ?1 AND channel = ?2
    UNION ALL
    SELECT 'persona', '', persona FROM channel_settings WHERE platform = ?1 AND channel = ?2
"""
# Every channel's settings at once, at most ?1 rows (see SqliteStore._channel).
SELECT_EVERY_CHANNEL_SETTING = """
    SELECT platform, channel, 'flag', name, value FROM channel_flags
    UNION ALL
    SELECT platform, channel, 'persona', '', persona FROM channel_settings
    LIMIT ?1
"""
FLAG_MESSAGE = "UPDATE messages SET flagged = 1 WHERE id = ?"

RAISE_FLOOR = "UPDATE conversations SET context_floor = MAX(context_floor, ?) WHERE id = ?"
# Each pair: drop the old channel's rows the new one has a value for, then rename the rest.
# Parameters: platform, old channel, new channel.
MOVE_SETTINGS = (
    """DELETE FROM channel_settings WHERE platform = ?1 AND channel = ?2
        AND EXISTS (SELECT 1 FROM channel_settings WHERE platform = ?1 AND channel = ?3)""",
    "UPDATE channel_settings SET channel = ?3 WHERE platform = ?1 AND channel = ?2",
    """DELETE FROM channel_flags WHERE platform = ?1 AND channel = ?2
        AND name IN (SELECT name FROM channel_flags WHERE platform = ?1 AND channel = ?3)""",
    "UPDATE channel_flags SET channel = ?3 WHERE platform = ?1 AND channel = ?2",
)
# Parameters: old scope, new scope.
MOVE_WORDS = (
    """DELETE FROM moderation_words WHERE scope = ?1
        AND word IN (SELECT word FROM moderation_words WHERE scope = ?2)""",
    "UPDATE moderation_words SET scope = ?2 WHERE scope = ?1",
)
SELECT_USAGE = """
    SELECT day, platform, channel, author_id, author_name, messages, refused,
        prompt_tokens, cached_tokens, reply_tokens
    FROM usage
    WHERE day >= ?1 AND (?2 IS NULL OR platform = ?2)
        AND (?3 IS NULL OR channel = ?3) AND (?4 IS NULL OR author_id = ?4)
    ORDER BY day, platform, channel, author_id
"""

# Recent activity (see RecentActivity). Conversations with a user message since a time, the
# most recently active first, each with its newest user message's platform id: SQLite takes
# a bare column from the row that gave MAX(). Parameters: platform, since, limit.
SELECT_RECENT_CONVERSATIONS = """
    SELECT c.channel, c.thread, m.platform_message_id, MAX(m.id) AS newest
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE c.platform = ? AND m.role = 'user' AND m.created_at >= ?
    GROUP BY c.id ORDER BY newest DESC LIMIT ?
"""

CHECKPOINT_INTERVAL_S = 2.0
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"

# Retention (see bot.store.base.Retention): each statement one batch, the oldest rows first.
# Ids follow arrival, so a batch looks at the `limit` lowest ids only (no index on
# created_at) and deletes those old enough. Parameters: before, limit.
PRUNE_VERDICTS = """
    DELETE FROM verdicts WHERE id IN (SELECT id FROM verdicts ORDER BY id LIMIT ?2) AND created_at < ?1
"""
PRUNE_USAGE = """
    DELETE FROM usage WHERE rowid IN (SELECT rowid FROM usage WHERE day < ?1 LIMIT ?2)
"""
# Never a message still to be answered or delivered, nor a question whose reply (its turn: see
# messages_by_turn) is younger or still to be delivered. `+messages.id`: without affinity,
# so SQLite matches the index's expression.
PRUNE_MESSAGES = """
    DELETE FROM messages
    WHERE id IN (
        SELECT id FROM messages WHERE status NOT IN ('pending', 'undelivered') ORDER BY id LIMIT ?2)
        AND created_at < ?1
        AND NOT EXISTS (SELECT 1 FROM messages AS r
            WHERE r.conversation_id = messages.conversation_id
                AND COALESCE(r.reply_to, r.id) = +messages.id
                AND (r.created_at >= ?1 OR r.status IN ('pending', 'undelivered')))
"""

# The WAL kept small (see bot.store.sqlite_wal): passive checkpoints never shrink the file,
# and under a steady flood never catch up, so the WAL only grew (measured: 1.7 GB
# beside a 41 MB database after 20,000 answered messages).
TRUNCATE_CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"
# Copies what is left and makes the next write start the WAL over (its file kept, cut back
# to journal_size_limit): what the WAL's limit needs while writes go on.
RESTART_CHECKPOINT = "PRAGMA wal_checkpoint(RESTART)"
DATA_VERSION = "PRAGMA data_version"
# The checkpointer gives up a TRUNCATE sooner than a writer waiting behind it would (BUSY_TIMEOUT).
CHECKPOINT_BUSY_TIMEOUT = "PRAGMA busy_timeout = 1000"
WAL_POLL_S = 0.1

# The owner's data (see OwnerData). A page of messages with their conversations, by id.
# Parameters: after id, platform, channel, thread (NULL: any), limit.
EXPORT_MESSAGES = """
    SELECT c.platform, c.channel, c.thread, m.id, m.role, m.author_id, m.author_name, m.text, m.created_at,
        m.platform_message_id, m.prompt_tokens, m.cached_tokens, m.reply_tokens, m.reply_to, m.status
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE m.id > ?1 AND (?2 IS NULL OR c.platform = ?2) AND (?3 IS NULL OR c.channel = ?3)
        AND (?4 IS NULL OR c.thread = ?4)
    ORDER BY m.id LIMIT ?5
"""
# forget_user: one person's messages (ids above ?3), then the replies to them (ids above ?1),
# read first on the reader, then again in the writer's transaction for what came since.
# Parameters: platform, author id, above id.
SELECT_THEIRS = """
    SELECT m.id FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE m.id > ?3 AND c.platform = ?1 AND m.author_id = ?2 AND m.role = 'user'
"""
# Parameters: above id, a JSON array of message ids.
SELECT_REPLIES_TO = """
    SELECT id FROM messages WHERE id > ?1 AND role = 'assistant'
        AND reply_to IN (SELECT value FROM json_each(?2))
"""
MAX_MESSAGE_ID = "SELECT COALESCE(MAX(id), 0) FROM messages"
# Parameters: a JSON array of message ids.
DELETE_VERDICTS_OF = "DELETE FROM verdicts WHERE message_id IN (SELECT value FROM json_each(?))"
DELETE_MESSAGES_BY_ID = "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))"

# Leases (see Leases): taken when free, expired, the holder's own or the replaced holder's.
# Parameters: name, holder, expires at, now, replacing.
CLAIM_LEASE = """
    INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at < ?4 OR leases.holder = ?5
"""
