"""Whether a message may be answered: rate limits and daily token quotas, per user and channel."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.messages import ConversationKey, IncomingMessage
from bot.quotas.buckets import Buckets, seconds_per_message
from bot.quotas.ledger import Scope, UsageLedger
from bot.quotas.limits import FLAG_PREFIX, LIMIT_NAMES, QuotaLimits, check_value
from bot.store import ChannelSettings

OVERRIDES_TTL_S = 30.0  # a channel's /quota values are read again after this (another process may set them)
NOTICE_QUIET_S = 60.0  # after a notice, the author hears nothing more of the same limit for at least this
MAX_NOTICES = 10_000

Kind = Literal["rate", "tokens"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens held against the daily quotas of `msg`'s author and channel while its reply
    is generated (the prompt and the most the reply may take); `settle` ends it."""

    msg: IncomingMessage
    tokens: int
    keys: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message was refused: which limit (`scope`, `kind`, its value), and in how many
    seconds the author may try again."""

    scope: Scope
    kind: Kind
    limit: int
    retry_after: float

    @property
    def reason(self) -> str:
        """`rate_user`, `rate_channel`, `tokens_user` or `tokens_channel`."""
        return f"{self.kind}_{self.scope}"


class Quotas:
    """Admits or refuses each message, counts what is spent, and keeps the channels' limits.

    Users are counted per platform across its channels; channels include their threads.
    A refused message takes nothing from any limit, so a flooding user never uses up the
    channel's rate for everyone else. Commands count against the same rate limits
    (`admit_command`). A reply holds a reservation (`reserve`) of its prompt and the
    most it may write until it is `settle`d, and the daily quotas count what is held:
    replies generated at once can overshoot a quota by at most one reservation."""

    def __init__(
        self, ledger: UsageLedger, channels: ChannelSettings, defaults: QuotaLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.defaults = defaults
        self._channels = channels
        self._clock = clock
        self._buckets = Buckets()
        self._overrides: dict[tuple[str, str], tuple[float, QuotaLimits]] = {}
        self._quiet_until: dict[tuple[str, str], float] = {}
        self._reserved: dict[tuple[str, str, str], int] = {}  # (scope, platform, id) → tokens held

    async def admit(self, msg: IncomingMessage, *, exempt: bool = False) -> Refusal | None:
        """None when `msg` may be answered (then it is counted against every limit), else why not.
        An `exempt` author (an admin) is counted in the usage but takes nothing from any limit."""
        limits = await self.limits_for(msg.key)
        refusal = None
        if not exempt:
            refusal = self._rate_refusal(msg, limits) or await self._token_refusal(msg, limits)
        self.ledger.count(msg, refused=refusal is not None)
        if refusal is None and not exempt:
            await self._take(msg, limits)
        await self.ledger.flush_due()
        return refusal

    async def admit_command(self, msg: IncomingMessage, *, exempt: bool = False) -> Refusal | None:
        """Whether a command from `msg`'s author may run now, by the rate limits messages
        have (never the daily token quotas: a command spends none, and `/usage` must still
        answer someone over theirs). Counted like a message when it runs; not in the usage."""
        if exempt:
            return None
        limits = await self.limits_for(msg.key)
        refusal = self._rate_refusal(msg, limits)
        if refusal is None:
            await self._take(msg, limits)
        return refusal

    async def token_refusal(self, msg: IncomingMessage) -> Refusal | None:
        """Whether `msg`'s author or channel has no tokens left today, counting what other
        replies hold now; None when a reply may be generated."""
        return await self._token_refusal(msg, await self.limits_for(msg.key))

    def reserve(self, msg: IncomingMessage, tokens: int) -> Reservation:
        """Hold `tokens` against `msg`'s author and channel until `settle`."""
        keys = (("user", msg.platform, msg.author_id), ("channel", msg.platform, msg.key.channel))
        for key in keys:
            self._reserved[key] = self._reserved.get(key, 0) + tokens
        return Reservation(msg, tokens, keys)

    def settle(self, reservation: Reservation, prompt: int = 0, cached: int = 0, reply: int = 0) -> None:
        """End `reservation`, charging what the reply really spent (no await between the two,
        so no check ever sees the tokens in neither place)."""
        for key in reservation.keys:
            left = self._reserved.get(key, 0) - reservation.tokens
            if left > 0:
                self._reserved[key] = left
            else:
                self._reserved.pop(key, None)
        if prompt or reply:
            self.spend(reservation.msg, prompt, cached, reply)

    async def _take(self, msg: IncomingMessage, limits: QuotaLimits) -> None:
        """Count one message against both buckets (has_room said yes to both: never waits)."""
        await self._buckets.take(_user(msg), limits.user_per_minute, limits.user_burst)
        await self._buckets.take(_channel(msg.key), limits.channel_per_minute, limits.channel_burst)

    def notice_due(self, msg: IncomingMessage, refusal: Refusal) -> bool:
        """Whether to tell `msg`'s author about `refusal`: once per spell, not once per message."""
        now, key = self._clock(), (_user(msg), refusal.reason)
        if self._quiet_until.get(key, 0.0) > now:
            return False
        if len(self._quiet_until) >= MAX_NOTICES:
            self._quiet_until = {k: t for k, t in self._quiet_until.items() if t > now}
        self._quiet_until[key] = now + max(refusal.retry_after, NOTICE_QUIET_S)
        return True

    def spend(self, msg: IncomingMessage, prompt: int, cached: int, reply: int) -> None:
        """Charge the tokens of the reply to `msg` to its author and channel."""
        self.ledger.spend(msg, prompt, cached, reply)

    async def limits_for(self, key: ConversationKey) -> QuotaLimits:
        """The limits in force in `key`'s channel: the defaults, with the channel's own values."""
        channel = (key.platform, key.channel)
        cached = self._overrides.get(channel)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        limits = self.defaults
        for name in LIMIT_NAMES:
            value = await self._channels.get_channel_flag(key, FLAG_PREFIX + name)
            if value is not None and value.isdigit():
                limits = limits.with_value(name, int(value))
        self._overrides[channel] = (self._clock() + OVERRIDES_TTL_S, limits)
        return limits

    async def set_limit(self, key: ConversationKey, name: str, value: int | None) -> QuotaLimits:
        """Give `key`'s channel its own value for `name` (None: back to the default); the
        limits now in force. ValueError for an unknown name or a value out of range."""
        if value is not None:
            check_value(name, value)
        elif name not in LIMIT_NAMES:
            check_value(name, 0)
        await self._channels.set_channel_flag(key, FLAG_PREFIX + name, None if value is None else str(value))
        self._overrides.pop((key.platform, key.channel), None)
        return await self.limits_for(key)

    def seconds_to_midnight(self) -> float:
        """Until the daily quotas start again (00:00 UTC)."""
        now = self.ledger.now()
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        return (midnight - now).total_seconds()

    def _rate_refusal(self, msg: IncomingMessage, limits: QuotaLimits) -> Refusal | None:
        if not self._buckets.has_room(_user(msg), limits.user_per_minute, limits.user_burst):
            wait = seconds_per_message(limits.user_per_minute)
            return Refusal("user", "rate", limits.user_per_minute, wait)
        if not self._buckets.has_room(_channel(msg.key), limits.channel_per_minute, limits.channel_burst):
            wait = seconds_per_message(limits.channel_per_minute)
            return Refusal("channel", "rate", limits.channel_per_minute, wait)
        return None

    async def _token_refusal(self, msg: IncomingMessage, limits: QuotaLimits) -> Refusal | None:
        checks: tuple[tuple[Scope, str, int], ...] = (
            ("user", msg.author_id, limits.user_daily_tokens),
            ("channel", msg.key.channel, limits.channel_daily_tokens),
        )
        for scope, ident, limit in checks:
            held = self._reserved.get((scope, msg.platform, ident), 0)
            if limit and await self.ledger.tokens_today(scope, msg.platform, ident) + held >= limit:
                return Refusal(scope, "tokens", limit, self.seconds_to_midnight())
        return None


def _user(msg: IncomingMessage) -> str:
    return f"user:{msg.platform}:{msg.author_id}"


def _channel(key: ConversationKey) -> str:
    return f"channel:{key.platform}:{key.channel}"
