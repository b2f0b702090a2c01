"""Quotas built from the settings: the limits, the ledger on the store, who is exempt."""

from __future__ import annotations

from collections.abc import Callable

from bot.app.settings import Settings
from bot.commands import Access, Admins
from bot.messages import IncomingMessage
from bot.quotas import QuotaLimits, Quotas, UsageLedger
from bot.store import Store


def quota_limits(settings: Settings) -> QuotaLimits:
    """The defaults every channel starts from (HEARTH_USER_*, HEARTH_CHANNEL_*)."""
    return QuotaLimits(
        user_per_minute=settings.user_messages_per_minute, user_burst=settings.user_burst,
        channel_per_minute=settings.channel_messages_per_minute, channel_burst=settings.channel_burst,
        user_daily_tokens=settings.user_daily_tokens, channel_daily_tokens=settings.channel_daily_tokens,
    )


def build_quotas(settings: Settings, store: Store) -> Quotas:
    """Quotas on `store` (its usage log and channel flags); close `.ledger` to write the last counts."""
    return Quotas(UsageLedger(store), store, quota_limits(settings))


def exemption(settings: Settings, admins: Admins) -> Callable[[IncomingMessage], bool]:
    """Who skips the quotas: admins, as the command table's one check sees them
    (HEARTH_QUOTA_ADMINS_EXEMPT), or nobody."""
    if not settings.quota_admins_exempt:
        return lambda msg: False
    return lambda msg: admins.may(msg, Access.ADMIN)
