"""The app's housekeeping task: retention (`bot.retention`) as the settings ask for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.app.settings import Settings
from bot.commands.usage import WEEK_DAYS
from bot.retention import Pruner, RetentionPolicy
from bot.store import Retention
from bot.tasks import TaskOwner

# /usage reports today and the 6 days before, daily quotas today: rows of days before
# today - 7 go, one day to spare.
USAGE_MIN_DAYS = WEEK_DAYS


def retention_policy(settings: Settings) -> RetentionPolicy:
    """HEARTH_RETENTION_DAYS for verdicts and usage rows (never fewer than USAGE_MIN_DAYS
    for usage), HEARTH_MESSAGE_RETENTION_DAYS for messages; 0 keeps forever."""
    days = settings.retention_days
    usage_days = max(days, USAGE_MIN_DAYS) if days else 0
    return RetentionPolicy(days, usage_days, settings.message_retention_days)


@asynccontextmanager
async def pruning(settings: Settings, store: Retention) -> AsyncIterator[Pruner]:
    """Prune `store` now and then hourly, in a task this block owns and cancels on leaving."""
    pruner = Pruner(store, retention_policy(settings))
    tasks = TaskOwner("upkeep")
    tasks.spawn(pruner.run(), "retention")
    try:
        yield pruner
    finally:
        await tasks.close()
