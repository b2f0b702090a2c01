"""The SQLite store's schema and statements: the migrations, applied in order, and the SQL
each method runs. `bot.store.sqlite` holds the behaviour."""

from __future__ import annotations

# How long a connection waits for another's write lock (ms) before SQLITE_BUSY.
BUSY_TIMEOUT = "PRAGMA busy_timeout = 5000"
# The WAL's size past which it is checkpointed and truncated at once (bot.store.sqlite_wal).
WAL_LIMIT_BYTES = 16 * 2**20

PRAGMAS = (
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

INSERT_CONVERSATION = """
    INSERT INTO conversations (platform, channel, thread, created_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (platform, channel, thread) DO NOTHING
"""
SELECT_CONVERSATION = """
    SELECT id FROM conversations WHERE platform = ? AND channel = ? AND thread = ?
"""
INSERT_MESSAGE = """
    INSERT INTO messages (conversation_id, role, author_id, author_name, text, created_at,
        platform_message_id, prompt_tokens, cached_tokens, reply_tokens, reply_to, status, meta,
        claimed_by)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (conversation_id, platform_message_id) DO NOTHING
    RETURNING id
"""
SELECT_HISTORY = """
    SELECT m.id, m.role, m.author_id, m.author_name, m.text, m.created_at,
        m.platform_message_id, m.prompt_tokens, m.cached_tokens, m.reply_tokens, m.reply_to, m.status
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE c.platform = ? AND c.channel = ? AND c.thread = ?
        AND COALESCE(m.reply_to, m.id) >= c.context_floor
        AND NOT m.flagged AND m.status IN ('pending', 'answered', 'merged', 'undelivered')
    ORDER BY COALESCE(m.reply_to, m.id) DESC, m.id DESC LIMIT ?
"""
UPSERT_FLOOR = """
    INSERT INTO conversations (platform, channel, thread, created_at, context_floor)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (platform, channel, thread) DO UPDATE SET context_floor = excluded.context_floor
"""
SET_STATUS = "UPDATE messages SET status = ? WHERE id = ?"
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
SKIP_PENDING = "UPDATE messages SET status = 'skipped' WHERE status = 'pending' AND created_at < ?"
DELETE_MESSAGES = """
    DELETE FROM messages WHERE conversation_id IN (
        SELECT id FROM conversations WHERE platform = ? AND channel = ? AND thread = ?)
"""
RESET_FLOOR = """
    UPDATE conversations SET context_floor = 0 WHERE platform = ? AND channel = ? AND thread = ?
"""
UPSERT_PERSONA = """
    INSERT INTO channel_settings (platform, channel, persona) VALUES (?, ?, ?)
    ON CONFLICT (platform, channel) DO UPDATE SET persona = excluded.persona
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
UPSERT_FLAG = """
    INSERT INTO channel_flags (platform, channel, name, value) VALUES (?, ?, ?, ?)
    ON CONFLICT (platform, channel, name) DO UPDATE SET value = excluded.value
"""
DELETE_FLAG = "DELETE FROM channel_flags WHERE platform = ? AND channel = ? AND name = ?"
UPSERT_WORD = """
    INSERT INTO moderation_words (scope, word, action, category) VALUES (?, ?, ?, ?)
    ON CONFLICT (scope, word) DO UPDATE SET action = excluded.action, category = excluded.category
"""
DELETE_WORD = "DELETE FROM moderation_words WHERE scope = ? AND word = ?"
SELECT_WORDS = "SELECT scope, word, action, category FROM moderation_words ORDER BY id"
SELECT_SETTING = "SELECT value FROM global_settings WHERE name = ?"
UPSERT_SETTING = """
    INSERT INTO global_settings (name, value) VALUES (?, ?)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""
INSERT_VERDICT = """
    INSERT INTO verdicts (conversation_id, message_id, direction, layer, flagged,
        categories, category_scores, action, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    RETURNING id
"""
FLAG_MESSAGE = "UPDATE messages SET flagged = 1 WHERE id = ?"
SELECT_VERDICTS = """
    SELECT v.message_id, v.direction, v.flagged, v.layer, v.categories,
        v.category_scores, v.action
    FROM verdicts AS v JOIN conversations AS c ON c.id = v.conversation_id
    WHERE c.platform = ? AND c.channel = ? AND c.thread = ?
    ORDER BY v.id
"""

# Moving a channel (see ChannelSettings.move_channel), statement by statement in one transaction.
SELECT_CHANNEL_CONVERSATIONS = """
    SELECT id, thread, context_floor FROM conversations WHERE platform = ? AND channel = ? ORDER BY id
"""
QUALIFY_PLATFORM_IDS = """
    UPDATE messages SET platform_message_id = ? || '/' || platform_message_id
    WHERE conversation_id = ? AND platform_message_id IS NOT NULL
"""
RENAME_CONVERSATION = "UPDATE conversations SET channel = ? WHERE id = ?"
MERGE_MESSAGES = "UPDATE messages SET conversation_id = ? WHERE conversation_id = ?"
MERGE_VERDICTS = "UPDATE verdicts SET conversation_id = ? WHERE conversation_id = ?"
RAISE_FLOOR = "UPDATE conversations SET context_floor = MAX(context_floor, ?) WHERE id = ?"
DELETE_CONVERSATION = "DELETE FROM conversations WHERE id = ?"
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
ADD_USAGE = """
    INSERT INTO usage (day, platform, channel, author_id, author_name, messages, refused,
        prompt_tokens, cached_tokens, reply_tokens)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (day, platform, channel, author_id) DO UPDATE SET
        author_name = CASE WHEN excluded.author_name = '' THEN usage.author_name
            ELSE excluded.author_name END,
        messages = usage.messages + excluded.messages,
        refused = usage.refused + excluded.refused,
        prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
        cached_tokens = usage.cached_tokens + excluded.cached_tokens,
        reply_tokens = usage.reply_tokens + excluded.reply_tokens
"""
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
SELECT_FLAGGED_CHANNELS = "SELECT channel FROM channel_flags WHERE platform = ? AND name = ? ORDER BY channel"

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
DATA_VERSION = "PRAGMA data_version"
# The checkpointer gives up a TRUNCATE sooner than a writer waiting behind it would (BUSY_TIMEOUT).
CHECKPOINT_BUSY_TIMEOUT = "PRAGMA busy_timeout = 1000"
WAL_POLL_S = 0.1

# Replies the platform did not take (see MessageStatus), delivered again by their owner.
SELECT_UNDELIVERED = """
    SELECT m.id, c.platform, c.channel, c.thread, m.text, m.meta, q.platform_message_id, m.created_at
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    LEFT JOIN messages AS q ON q.id = m.reply_to
    WHERE m.status = 'undelivered' AND m.created_at >= ? AND m.claimed_by = ?
    ORDER BY m.id
"""
EXPIRE_UNDELIVERED = "UPDATE messages SET status = 'skipped' WHERE status = 'undelivered' AND created_at < ?"
MARK_DELIVERED = """
    UPDATE messages SET status = 'answered', platform_message_id = COALESCE(platform_message_id, ?)
    WHERE id = ? AND status = 'undelivered'
"""

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
DELETE_USAGE_OF = "DELETE FROM usage WHERE platform = ? AND author_id = ?"

# Leases (see Leases): taken when free, expired, the holder's own or the replaced holder's.
# Parameters: name, holder, expires at, now, replacing.
CLAIM_LEASE = """
    INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at < ?4 OR leases.holder = ?5
"""
SELECT_LEASE = "SELECT holder, expires_at FROM leases WHERE name = ?"
RELEASE_LEASE = "DELETE FROM leases WHERE name = ? AND holder = ?"
