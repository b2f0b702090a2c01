"""PostgreSQL's schema and statements for `PostgresStore`.

The statements both stores run are written once, in `bot.store.statements`, and
numbered here for asyncpg; the rest are PostgreSQL's own.

`MIGRATIONS` mirrors `bot.store.sqlite.MIGRATIONS` one for one, in PostgreSQL's
dialect, so a schema version means the same tables on either database: append a
script to both, never edit an old one, never BEGIN or COMMIT in one. Identity
columns come from sequences, which never hand out an id twice, even after a reset
or a rolled-back insert (SQLite's AUTOINCREMENT promise: a context floor is an id).
"""

from __future__ import annotations

from bot.store import statements as shared
from bot.store.statements import numbered

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        thread TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        context_floor BIGINT NOT NULL DEFAULT 0,
        UNIQUE (platform, channel, thread)
    );
    CREATE TABLE messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        author_id TEXT NOT NULL DEFAULT '',
        author_name TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
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
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        message_id BIGINT NULL REFERENCES messages (id) ON DELETE SET NULL,
        direction TEXT NOT NULL,
        layer TEXT NOT NULL,
        flagged BOOLEAN NOT NULL,
        categories TEXT NOT NULL,
        category_scores TEXT NOT NULL,
        action TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX verdicts_by_conversation ON verdicts (conversation_id, id);
    CREATE INDEX verdicts_by_message ON verdicts (message_id);
    """,
    """
    ALTER TABLE messages ADD COLUMN reply_to BIGINT NULL;
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
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        scope TEXT NOT NULL,
        word TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('block', 'allow')),
        category TEXT NOT NULL,
        UNIQUE (scope, word)
    );
    """,
    """
    ALTER TABLE messages ADD COLUMN flagged BOOLEAN NOT NULL DEFAULT FALSE;
    UPDATE messages SET flagged = TRUE WHERE id IN (
        SELECT message_id FROM verdicts WHERE direction = 'input' AND flagged);
    """,
    """
    ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'answered';
    ALTER TABLE messages ADD COLUMN meta TEXT NULL;
    CREATE INDEX messages_pending ON messages (id) WHERE status = 'pending';
    """,
    """
    ALTER TABLE messages ADD COLUMN claimed_by TEXT NULL;
    """,
    """
    CREATE TABLE usage (
        day TEXT NOT NULL,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        author_id TEXT NOT NULL,
        author_name TEXT NOT NULL DEFAULT '',
        messages BIGINT NOT NULL DEFAULT 0,
        refused BIGINT NOT NULL DEFAULT 0,
        prompt_tokens BIGINT NOT NULL DEFAULT 0,
        cached_tokens BIGINT NOT NULL DEFAULT 0,
        reply_tokens BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (day, platform, channel, author_id)
    );
    CREATE INDEX usage_by_author ON usage (platform, author_id, day);
    """,
    """
    UPDATE verdicts SET
        categories = COALESCE((SELECT json_agg(c.key)::text FROM json_each_text(categories::json) AS c
            WHERE c.value = 'true'), '[]'),
        category_scores = COALESCE((SELECT json_object_agg(s.key, round(s.value::numeric, 3))::text
            FROM json_each_text(category_scores::json) AS s WHERE round(s.value::numeric, 3) <> 0), '{}');
    """,
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    """,
)

# Migrations run under this transaction-level advisory lock, so two processes
# starting at once never both migrate. Any fixed 64-bit number would do.
MIGRATION_LOCK = 0x4845415254480001
CREATE_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS hearth_schema (version INTEGER NOT NULL)"
SELECT_VERSION = "SELECT max(version) FROM hearth_schema"
CLEAR_VERSION = "DELETE FROM hearth_schema"
INSERT_VERSION = "INSERT INTO hearth_schema (version) VALUES ($1)"

INSERT_CONVERSATION = numbered(shared.INSERT_CONVERSATION)
SELECT_CONVERSATION = numbered(shared.SELECT_CONVERSATION)
INSERT_MESSAGE = numbered(shared.INSERT_MESSAGE)
SELECT_HISTORY = numbered(shared.SELECT_HISTORY)
UPSERT_FLOOR = numbered(shared.UPSERT_FLOOR)
SET_STATUS = numbered(shared.SET_STATUS)
NOTE_SHOWN = """
    UPDATE messages SET meta = jsonb_set(COALESCE(meta, '{}')::jsonb, '{shown}', $1::jsonb)::text
    WHERE id = $2
"""
PENDING_COLUMNS = """m.id, c.platform, c.channel, c.thread, m.author_id, m.author_name, m.text,
        m.platform_message_id, m.created_at, m.meta"""
SELECT_PENDING = f"""
    SELECT {PENDING_COLUMNS}
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE m.status = 'pending' AND m.role = 'user' AND m.created_at >= $1
    ORDER BY m.id
"""
CLAIMABLE = """m.status = 'pending' AND m.role = 'user' AND m.created_at >= $2
        AND (m.claimed_by IS NULL OR m.claimed_by = $1)"""
# The conversations are locked first, in id order (so two claims never deadlock):
# a second claim waits, and then finds their messages taken. The UPDATE rechecks
# `claimed_by` on the newest row version, so no message is ever claimed twice; the
# conversation lock makes one claim take all of a conversation's messages. NO KEY
# UPDATE does not block inserting messages that reference the conversation.
CLAIM_PENDING = f"""
    WITH claimable AS (
        SELECT c.id FROM conversations AS c
        WHERE EXISTS (SELECT 1 FROM messages AS m WHERE m.conversation_id = c.id AND {CLAIMABLE})
        ORDER BY c.id
        FOR NO KEY UPDATE OF c
    )
    UPDATE messages AS m SET claimed_by = $1
    FROM conversations AS c
    WHERE c.id = m.conversation_id AND c.id IN (SELECT id FROM claimable) AND {CLAIMABLE}
    RETURNING {PENDING_COLUMNS}
"""
SKIP_PENDING = numbered(shared.SKIP_PENDING)
DELETE_MESSAGES = numbered(shared.DELETE_MESSAGES)
RESET_FLOOR = numbered(shared.RESET_FLOOR)
# Moving a channel (see ChannelSettings.move_channel), statement by statement in one transaction.
SELECT_CHANNEL_CONVERSATIONS = numbered(shared.SELECT_CHANNEL_CONVERSATIONS)
QUALIFY_PLATFORM_IDS = numbered(shared.QUALIFY_PLATFORM_IDS)
RENAME_CONVERSATION = numbered(shared.RENAME_CONVERSATION)
MERGE_MESSAGES = numbered(shared.MERGE_MESSAGES)
MERGE_VERDICTS = numbered(shared.MERGE_VERDICTS)
RAISE_FLOOR = "UPDATE conversations SET context_floor = GREATEST(context_floor, $1) WHERE id = $2"
DELETE_CONVERSATION = numbered(shared.DELETE_CONVERSATION)
# Each pair: drop the old channel's rows the new one has a value for, then rename the rest.
# Parameters: platform, old channel, new channel.
MOVE_SETTINGS = (
    """DELETE FROM channel_settings WHERE platform = $1 AND channel = $2
        AND EXISTS (SELECT 1 FROM channel_settings WHERE platform = $1 AND channel = $3)""",
    "UPDATE channel_settings SET channel = $3 WHERE platform = $1 AND channel = $2",
    """DELETE FROM channel_flags WHERE platform = $1 AND channel = $2
        AND name IN (SELECT name FROM channel_flags WHERE platform = $1 AND channel = $3)""",
    "UPDATE channel_flags SET channel = $3 WHERE platform = $1 AND channel = $2",
)
# Parameters: old scope, new scope.
MOVE_WORDS = (
    """DELETE FROM moderation_words WHERE scope = $1
        AND word IN (SELECT word FROM moderation_words WHERE scope = $2)""",
    "UPDATE moderation_words SET scope = $2 WHERE scope = $1",
)
SELECT_PERSONA = "SELECT persona FROM channel_settings WHERE platform = $1 AND channel = $2"
UPSERT_PERSONA = numbered(shared.UPSERT_PERSONA)
SELECT_FLAG = "SELECT value FROM channel_flags WHERE platform = $1 AND channel = $2 AND name = $3"
UPSERT_FLAG = numbered(shared.UPSERT_FLAG)
DELETE_FLAG = numbered(shared.DELETE_FLAG)
UPSERT_WORD = numbered(shared.UPSERT_WORD)
DELETE_WORD = numbered(shared.DELETE_WORD)
SELECT_WORDS = numbered(shared.SELECT_WORDS)
SELECT_SETTING = numbered(shared.SELECT_SETTING)
UPSERT_SETTING = numbered(shared.UPSERT_SETTING)
INSERT_VERDICT = numbered(shared.INSERT_VERDICT)
FLAG_MESSAGE = "UPDATE messages SET flagged = TRUE WHERE id = $1"
SELECT_VERDICTS = numbered(shared.SELECT_VERDICTS)
COUNT_MESSAGES = "SELECT count(*) FROM messages"
ADD_USAGE = numbered(shared.ADD_USAGE)
SELECT_USAGE = """
    SELECT day, platform, channel, author_id, author_name, messages, refused,
        prompt_tokens, cached_tokens, reply_tokens
    FROM usage
    WHERE day >= $1 AND ($2::text IS NULL OR platform = $2)
        AND ($3::text IS NULL OR channel = $3) AND ($4::text IS NULL OR author_id = $4)
    ORDER BY day, platform, channel, author_id
"""

# Retention (see bot.store.base.Retention): each statement one batch, the oldest rows first.
# Ids follow arrival, so a batch looks at the `limit` lowest ids only and deletes those
# old enough. Parameters: before, limit.
PRUNE_VERDICTS = """
    DELETE FROM verdicts WHERE id IN (SELECT id FROM verdicts ORDER BY id LIMIT $2) AND created_at < $1
"""
PRUNE_USAGE = "DELETE FROM usage WHERE ctid IN (SELECT ctid FROM usage WHERE day < $1 LIMIT $2)"

# Recent activity (see RecentActivity): conversations with a user message since a time, the
# most recently active first, each with its newest user message's platform id.
# Parameters: platform, since, limit.
SELECT_RECENT_CONVERSATIONS = """
    SELECT channel, thread, platform_message_id FROM (
        SELECT DISTINCT ON (c.id) c.channel, c.thread, m.platform_message_id, m.id
        FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
        WHERE c.platform = $1 AND m.role = 'user' AND m.created_at >= $2
        ORDER BY c.id, m.id DESC
    ) AS newest ORDER BY id DESC LIMIT $3
"""
SELECT_FLAGGED_CHANNELS = numbered(shared.SELECT_FLAGGED_CHANNELS)

# Never a message still to be answered or delivered, nor a question whose reply (its turn: see
# messages_by_turn) is younger or still to be delivered.
PRUNE_MESSAGES = """
    DELETE FROM messages AS m
    WHERE m.id IN (
        SELECT id FROM messages WHERE status NOT IN ('pending', 'undelivered') ORDER BY id LIMIT $2)
        AND m.created_at < $1
        AND NOT EXISTS (SELECT 1 FROM messages AS r
            WHERE r.conversation_id = m.conversation_id
                AND COALESCE(r.reply_to, r.id) = m.id
                AND (r.created_at >= $1 OR r.status IN ('pending', 'undelivered')))
"""

# Replies the platform did not take (see MessageStatus), delivered again by their owner.
SELECT_UNDELIVERED = numbered(shared.SELECT_UNDELIVERED)
EXPIRE_UNDELIVERED = numbered(shared.EXPIRE_UNDELIVERED)
MARK_DELIVERED = numbered(shared.MARK_DELIVERED)

# The owner's data (see OwnerData). A page of messages with their conversations, by id.
# Parameters: after id, platform, channel, thread (NULL: any), limit.
EXPORT_MESSAGES = """
    SELECT c.platform, c.channel, c.thread, m.id, m.role, m.author_id, m.author_name, m.text, m.created_at,
        m.platform_message_id, m.prompt_tokens, m.cached_tokens, m.reply_tokens, m.reply_to, m.status
    FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE m.id > $1 AND ($2::text IS NULL OR c.platform = $2) AND ($3::text IS NULL OR c.channel = $3)
        AND ($4::text IS NULL OR c.thread = $4)
    ORDER BY m.id LIMIT $5
"""
# forget_user, in one transaction: one person's messages (parameters: platform, author id),
# then the replies to them (an array of their ids).
SELECT_THEIRS = """
    SELECT m.id FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
    WHERE c.platform = $1 AND m.author_id = $2 AND m.role = 'user'
"""
SELECT_REPLIES_TO = "SELECT id FROM messages WHERE role = 'assistant' AND reply_to = ANY($1::bigint[])"
# Parameters: an array of message ids.
DELETE_VERDICTS_OF = "DELETE FROM verdicts WHERE message_id = ANY($1::bigint[])"
DELETE_MESSAGES_BY_ID = "DELETE FROM messages WHERE id = ANY($1::bigint[])"
DELETE_USAGE_OF = numbered(shared.DELETE_USAGE_OF)

# Leases (see Leases): taken when free, expired, the holder's own or the replaced holder's;
# the row as it stands afterwards. Parameters: name, holder, expires at, now, replacing.
CLAIM_LEASE = """
    INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at < $4 OR leases.holder = $5
"""
SELECT_LEASE = numbered(shared.SELECT_LEASE)
RELEASE_LEASE = numbered(shared.RELEASE_LEASE)
