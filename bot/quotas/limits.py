"""The quotas in force: the HEARTH_* defaults, or a channel's own values set with `/quota`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# `/quota set NAME VALUE` names → QuotaLimits fields.
LIMIT_NAMES: dict[str, str] = {
    "user-rate": "user_per_minute",
    "user-burst": "user_burst",
    "channel-rate": "channel_per_minute",
    "channel-burst": "channel_burst",
    "user-tokens": "user_daily_tokens",
    "channel-tokens": "channel_daily_tokens",
}
BURSTS = frozenset({"user-burst", "channel-burst"})  # at least 1; every other limit: 0 turns it off
FLAG_PREFIX = "quota:"  # a channel's own value is the channel flag `quota:NAME`


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """Messages a minute and at once (burst), per user and per channel, and tokens a day
    (UTC) per user and per channel. A rate or token limit of 0 is no limit."""

    user_per_minute: int = 20
    user_burst: int = 6
    channel_per_minute: int = 60
    channel_burst: int = 20
    user_daily_tokens: int = 200_000
    channel_daily_tokens: int = 2_000_000

    def get(self, name: str) -> int:
        """The value of a `/quota` name (a key of LIMIT_NAMES)."""
        return int(getattr(self, LIMIT_NAMES[name]))

    def with_value(self, name: str, value: int) -> QuotaLimits:
        return dataclasses.replace(self, **{LIMIT_NAMES[name]: value})

    def allows_more(self, name: str, value: int) -> bool:
        """Whether `value` for `name` is looser than this one (0, no limit, is the loosest)."""
        current = self.get(name)
        if name in BURSTS:
            return value > current
        return current != 0 and (value == 0 or value > current)


def check_value(name: str, value: int) -> None:
    """ValueError for an unknown name or a value out of range."""
    if name not in LIMIT_NAMES:
        raise ValueError(f"unknown quota {name!r}; one of {', '.join(LIMIT_NAMES)}")
    if value < (1 if name in BURSTS else 0):
        raise ValueError(f"{name} must be {'1' if name in BURSTS else '0'} or more")
