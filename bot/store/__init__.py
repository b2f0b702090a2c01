"""Persistence behind one async interface: SQLite (the default), PostgreSQL and in-memory."""

from bot.store.base import (
    ChannelSettings,
    Conversations,
    GlobalSettings,
    ModerationWords,
    RecentActivity,
    Retention,
    Store,
    UsageLog,
    VerdictLog,
)
from bot.store.memory import MemoryStore
from bot.store.postgres import PostgresStore
from bot.store.sqlite import SqliteStore

__all__ = [
    "ChannelSettings", "Conversations", "GlobalSettings", "MemoryStore", "ModerationWords",
    "PostgresStore", "RecentActivity", "Retention", "SqliteStore", "Store", "UsageLog", "VerdictLog",
]
