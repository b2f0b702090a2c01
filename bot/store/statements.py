"""The statements both SQL stores run, written once, with SQLite's `?` placeholders.

`SqliteStore` runs them as written; `bot.store.postgres_schema` numbers them for
asyncpg (`numbered`: `$1`, `$2`, … in the order the `?` stand). Each dialect keeps
only what it says differently (JSON, arrays, upserts of its own, MAX against
GREATEST) in its own module, beside its migrations.
"""

from __future__ import annotations

import re

PLACEHOLDER_OR_LITERAL = re.compile(r"'(?:[^']|'')*'|\?")  # a `?` inside a string literal stays


def numbered(sql: str) -> str:
    """`sql` with each `?` placeholder as PostgreSQL's `$1`, `$2`, …, in order."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return PLACEHOLDER_OR_LITERAL.sub(number, sql)


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
DELETE_CONVERSATION = "DELETE FROM conversations WHERE id = ?"
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
SELECT_FLAGGED_CHANNELS = "SELECT channel FROM channel_flags WHERE platform = ? AND name = ? ORDER BY channel"
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
DELETE_USAGE_OF = "DELETE FROM usage WHERE platform = ? AND author_id = ?"
SELECT_LEASE = "SELECT holder, expires_at FROM leases WHERE name = ?"
RELEASE_LEASE = "DELETE FROM leases WHERE name = ? AND holder = ?"
