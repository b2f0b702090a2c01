"""Which store the settings ask for: PostgreSQL when HEARTH_DATABASE_URL is set, else SQLite."""

from __future__ import annotations

from bot.app.settings import Settings
from bot.store import PostgresStore, SqliteStore, Store


def store_for(settings: Settings) -> Store:
    """The store (not opened yet): shared PostgreSQL, or the SQLite file HEARTH_DB_PATH."""
    if settings.database_url is not None:
        return PostgresStore(settings.database_url.get_secret_value())
    return SqliteStore(settings.database)
