"""Per-user and per-channel quotas: rate limits (leaky buckets) and daily token quotas.

`policy.Quotas` admits or refuses a message and holds each channel's limits;
`ledger.UsageLedger` counts what is spent per author and channel and day, kept in
the store (`UsageLog`) so daily quotas outlive a restart; `limits.QuotaLimits` are
the values in force. The pipeline's `QuotaGate` and `/usage`, `/quota` use them.
"""

from bot.quotas.ledger import UsageLedger, day_of, utc_now
from bot.quotas.limits import LIMIT_NAMES, QuotaLimits
from bot.quotas.policy import Quotas, Refusal, Reservation

__all__ = [
    "LIMIT_NAMES", "QuotaLimits", "Quotas", "Refusal", "Reservation", "UsageLedger", "day_of", "utc_now",
]
