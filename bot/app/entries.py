"""Strict parsing of the settings that name people and places: HEARTH_ADMIN_IDS, HEARTH_ACCESS_ALLOW.

An entry that can never match (`telegram: 777` with a space, `telegram:@owner`, a `;`
between entries) used to be accepted and silently ignored, so the owner believed
someone was an operator who was not. Now it stops start-up. Errors name the entry's
position (1-based, counting every comma-separated part), never its text: a token
pasted by mistake must not reach the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# What a platform's user ids look like: Discord snowflakes, Telegram's positive user ids,
# the terminal's one local user. Telegram chat ids may be negative (groups).
USER_IDS = {
    "discord": re.compile(r"[0-9]{1,20}"),
    "telegram": re.compile(r"[0-9]{1,16}"),
    "terminal": re.compile(r"[a-z][a-z0-9_-]{0,31}"),
}
# HEARTH_ACCESS_ALLOW: `platform:kind:id`; which kinds each platform has, and their ids.
PLACE_KINDS = {
    "discord": {"server": r"[0-9]{1,20}", "channel": r"[0-9]{1,20}", "user": r"[0-9]{1,20}"},
    "telegram": {"chat": r"-?[0-9]{1,16}", "user": r"[0-9]{1,16}"},
}
ADMIN_FORM = ("platform:id with a numeric id, e.g. telegram:123456789 (discord, telegram or terminal), "
              "entries separated by commas")
ALLOW_FORM = ("platform:kind:id, e.g. discord:server:123456789012345678, telegram:chat:-1001234, "
              "telegram:user:123456789 (discord: server, channel, user; telegram: chat, user)")


def split_entries(value: object) -> list[tuple[int, str]]:
    """Comma-separated entries with their 1-based positions; empty parts are skipped (but counted)."""
    parts: Iterable[object]
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, Iterable):
        parts = sorted(value, key=str) if isinstance(value, set | frozenset) else value
    else:
        raise ValueError("must be a comma-separated list")
    return [(i, str(p).strip()) for i, p in enumerate(parts, 1) if str(p).strip()]


def admin_entries(value: object) -> frozenset[str]:
    """HEARTH_ADMIN_IDS as a set of `platform:id`. ValueError naming the first bad entry's position."""
    entries = split_entries(value)
    for position, entry in entries:
        platform, _, ident = entry.partition(":")
        pattern = USER_IDS.get(platform)
        if pattern is None or not pattern.fullmatch(ident):
            raise ValueError(f"entry {position} is not {ADMIN_FORM}")
    return frozenset(_numbers_plain(entry) for _, entry in entries)


def allow_entries(value: object) -> frozenset[str]:
    """HEARTH_ACCESS_ALLOW as a set of `platform:kind:id`. ValueError naming the first bad entry."""
    entries = split_entries(value)
    for position, entry in entries:
        platform, _, rest = entry.partition(":")
        kind, _, ident = rest.partition(":")
        pattern = PLACE_KINDS.get(platform, {}).get(kind)
        if pattern is None or not re.fullmatch(pattern, ident):
            raise ValueError(f"entry {position} is not {ALLOW_FORM}")
    return frozenset(_numbers_plain(entry) for _, entry in entries)


def _numbers_plain(entry: str) -> str:
    """`entry` with its numeric id as the platforms write it (`telegram:0012` is user 12:
    kept as typed, it would match nobody)."""
    head, _, ident = entry.rpartition(":")
    return f"{head}:{int(ident)}" if re.fullmatch(r"-?[0-9]+", ident) else entry
