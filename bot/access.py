"""Who may talk to Hearth at all: HEARTH_ACCESS, the allowlist, and pairing by direct message.

`open` (the default) answers anyone, as Hearth always did. `allowlist` answers only
the places and people listed, like the agents that reach Telegram and Discord deny
strangers by default: a server (Discord), a channel (Discord) or a chat (Telegram),
where everyone there may talk to Hearth, or a user, anywhere. Direct messages follow
HEARTH_DM_POLICY: `open`, `allowlisted` (listed users only) or `pairing` (listed users,
and those an operator approved: a stranger's message is answered with a one-hour code,
and an operator's `/access approve CODE` lets them in). Operators are always answered.

Entries are `platform:kind:id` (`discord:server:…`, `discord:channel:…`,
`telegram:chat:…`, `platform:user:…`): HEARTH_ACCESS_ALLOW's, plus those an operator
added with `/access` (a global setting, so every process sharing the store sees them
within ENTRIES_TTL_S).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.messages import IncomingMessage
from bot.store import GlobalSettings

ENTRIES_SETTING = "access_allow"  # entries operators added, comma-separated
PAIRING_PREFIX = "access_pairing:"  # + code → "entry expiry" (epoch seconds)
PAIRING_TTL_S = 3600.0
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out loud or typed
CODE_LENGTH = 8
ENTRIES_TTL_S = 30.0  # operators' entries are read again after this (another process may add some)
NOTICE_QUIET_S = 3600.0  # a refused place hears why at most this often
LOCAL = "terminal"  # the owner's own console: always answered
MAX_NOTICES = 10_000

Mode = Literal["open", "allowlist"]
DmPolicy = Literal["open", "allowlisted", "pairing"]


@dataclass(frozen=True, slots=True)
class AccessRules:
    """The settings: HEARTH_ACCESS, HEARTH_ACCESS_ALLOW, HEARTH_DM_POLICY, and the operators."""

    mode: Mode = "open"
    allow: frozenset[str] = frozenset()
    dm_policy: DmPolicy = "pairing"
    operators: frozenset[str] = frozenset()


def user_entry(msg: IncomingMessage) -> str:
    return f"{msg.platform}:user:{msg.author_id}"


def place_entries(msg: IncomingMessage) -> list[str]:
    """The entries that would let everyone in `msg`'s place talk to Hearth."""
    if msg.platform == "telegram":
        return [f"telegram:chat:{msg.key.channel}"]
    places = [f"{msg.platform}:channel:{msg.key.channel}"]
    if msg.server:
        places.append(f"{msg.platform}:server:{msg.server}")
    return places


class AccessPolicy:
    """Decides, per message, whether Hearth answers its author; runs pairing."""

    def __init__(
        self, rules: AccessRules, settings: GlobalSettings, clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self._settings = settings
        self._clock = clock
        self._added: tuple[float, frozenset[str]] = (-ENTRIES_TTL_S, frozenset())
        self._quiet_until: dict[str, float] = {}
        self._codes: dict[str, tuple[str, float]] = {}  # user entry → (code, expiry): one code at a time

    async def allows(self, msg: IncomingMessage) -> bool:
        """Whether Hearth answers `msg`'s author here."""
        rules = self.rules
        if rules.mode == "open" or msg.admin_key in rules.operators or msg.platform == LOCAL:
            return True
        if msg.is_direct and rules.dm_policy == "open":
            return True
        entries = rules.allow | await self.added()
        if user_entry(msg) in entries:
            return True
        return not msg.is_direct and any(place in entries for place in place_entries(msg))

    async def added(self) -> frozenset[str]:
        """The entries operators added (`/access allow`, pairing), read at most every ENTRIES_TTL_S."""
        read_at, entries = self._added
        if self._clock() - read_at < ENTRIES_TTL_S:
            return entries
        stored = await self._settings.get_setting(ENTRIES_SETTING) or ""
        entries = frozenset(e for e in stored.split(",") if e)
        self._added = (self._clock(), entries)
        return entries

    async def add(self, entry: str) -> None:
        """Let `entry` (`platform:kind:id`, checked by the caller) talk to Hearth."""
        await self._store(await self._fresh() | {entry})

    async def remove(self, entry: str) -> bool:
        """Forget an entry an operator added; False when it was not one (HEARTH_ACCESS_ALLOW's stay)."""
        entries = await self._fresh()
        if entry not in entries:
            return False
        await self._store(entries - {entry})
        return True

    def notice_due(self, msg: IncomingMessage) -> bool:
        """Whether to tell `msg`'s place why it is not answered: once per NOTICE_QUIET_S."""
        place = user_entry(msg) if msg.is_direct else place_entries(msg)[0]
        now = self._clock()
        if self._quiet_until.get(place, 0.0) > now:
            return False
        if len(self._quiet_until) >= MAX_NOTICES:
            self._quiet_until = {k: t for k, t in self._quiet_until.items() if t > now}
        self._quiet_until[place] = now + NOTICE_QUIET_S
        return True

    def pairs(self, msg: IncomingMessage) -> bool:
        """Whether `msg`'s author could be paired (a direct message under HEARTH_DM_POLICY=pairing)."""
        return msg.is_direct and self.rules.dm_policy == "pairing"

    async def pairing_code(self, msg: IncomingMessage) -> str:
        """A code an operator can approve for `msg`'s author (the same one until it expires)."""
        entry, now = user_entry(msg), self._clock()
        known = self._codes.get(entry)
        if known is not None and known[1] > now:
            return known[0]
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        expiry = now + PAIRING_TTL_S
        await self._settings.set_setting(PAIRING_PREFIX + code, f"{entry} {expiry:.0f}")
        self._codes = {e: c for e, c in self._codes.items() if c[1] > now} | {entry: (code, expiry)}
        return code

    async def approve(self, code: str) -> str | None:
        """Pair the user a live `code` was made for; that user's entry, or None (unknown, expired)."""
        name = PAIRING_PREFIX + code.strip().upper()
        stored = await self._settings.get_setting(name)
        if not stored:
            return None
        entry, _, expiry = stored.partition(" ")
        await self._settings.set_setting(name, "")  # a code is good once
        if not expiry.isdigit() or float(expiry) < self._clock():
            return None
        await self.add(entry)
        return entry

    async def _fresh(self) -> frozenset[str]:
        self._added = (-ENTRIES_TTL_S, frozenset())
        return await self.added()

    async def _store(self, entries: frozenset[str]) -> None:
        await self._settings.set_setting(ENTRIES_SETTING, ",".join(sorted(entries)))
        self._added = (self._clock(), entries)
