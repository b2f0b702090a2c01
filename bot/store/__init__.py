"""Persistence behind one async interface: SQLite (the default), PostgreSQL and in-memory."""

from bot.store.base import (
    ChannelSettings,
    Conversations,
    Forgotten,
    GlobalSettings,
    Lease,
    Leases,
    ModerationWords,
    OwnerData,
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
    "ChannelSettings", "Conversations", "Forgotten", "GlobalSettings", "Lease", "Leases", "MemoryStore",
    "ModerationWords", "OwnerData", "PostgresStore", "RecentActivity", "Retention", "SqliteStore", "Store",
    "UsageLog", "VerdictLog",
]
