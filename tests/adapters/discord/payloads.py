"""What the fake Discord sends: its ids, and the JSON of its users, guilds, channels and messages.

Two servers ("guilds"): GUILD_ID with a text channel, two threads and roles, and
GUILD_B_ID with a text channel only; their ids put them on different shards when
the bot runs two. One DM channel and a few users. Ids are real-length snowflakes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

Json = dict[str, Any]

TOKEN = "fake-discord-token-4f9a1c"
# Snowflake-sized ids: discord.py finds mentions with a 15-20 digit pattern.
SNOWFLAKE = 310_000_000_000_000_000
BOT_ID = SNOWFLAKE + 1000  # also the application id, as for real bots
GUILD_ID = SNOWFLAKE + 2000  # with 2 shards: shard 1 (see `shard_of`)
GUILD_B_ID = GUILD_ID + (1 << 22)  # the next shard over: with 2 shards, shard 0
ADMIN_ROLE_ID = SNOWFLAKE + 2001
BOT_ROLE_ID = SNOWFLAKE + 2002  # the role Discord makes for a bot it adds to a server
CHANNEL_ID = SNOWFLAKE + 3000
THREAD_A_ID = SNOWFLAKE + 3001
THREAD_B_ID = SNOWFLAKE + 3002
CHANNEL_B_ID = SNOWFLAKE + 3100  # the text channel of GUILD_B_ID
DM_ID = SNOWFLAKE + 4000
ADMIN_ID = SNOWFLAKE + 5001  # has a role with Manage Server
MEMBER_ID = SNOWFLAKE + 5002  # no special permissions
OTHER_BOT_ID = SNOWFLAKE + 5003
OWNER_ID = SNOWFLAKE + 5009

MANAGE_GUILD = 1 << 5
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 38)  # view, send, history, threads
MESSAGE_CONTENT_INTENT = 1 << 15
EPHEMERAL = 1 << 6
MAX_CONTENT = 2000
TIMESTAMP = "2026-11-22T12:00:00+00:00"
# People with no special permissions, for messages that must not be merged (an author's
# messages waiting in one conversation are answered together).
GUESTS = tuple(SNOWFLAKE + 5100 + n for n in range(10))
NAMES = {BOT_ID: "hearth", ADMIN_ID: "alice", MEMBER_ID: "bob", OTHER_BOT_ID: "otherbot", OWNER_ID: "olga",
         **{guest: f"guest{n}" for n, guest in enumerate(GUESTS)}}
GUILDS = (GUILD_ID, GUILD_B_ID)
DISCORD_EPOCH_MS = 1_420_070_400_000
GUILD_OF = {CHANNEL_ID: GUILD_ID, THREAD_A_ID: GUILD_ID, THREAD_B_ID: GUILD_ID, CHANNEL_B_ID: GUILD_B_ID}


def snowflakes() -> Iterator[int]:
    """New ids as Discord makes them: the time in their top bits (discord.py's `snowflake_time`
    reads it back), always rising. So a message's age is what its id says, as on Discord."""
    last = 0
    while True:
        last = max(last + 1, snowflake_at(time.time()))
        yield last


def snowflake_at(unix_time: float) -> int:
    """The lowest id Discord could give at `unix_time`."""
    return (int(unix_time * 1000) - DISCORD_EPOCH_MS) << 22


def user(uid: int) -> Json:
    name = NAMES[uid]
    return {"id": str(uid), "username": name, "discriminator": "0", "global_name": name.title(),
            "avatar": None, "bot": uid in (BOT_ID, OTHER_BOT_ID)}


def shard_of(guild_id: int, count: int) -> int:
    """The shard Discord sends a guild's events to."""
    return (guild_id >> 22) % count


def member(uid: int, guild_id: int = GUILD_ID) -> Json:
    """`uid` as a member of `guild_id`: only the first server has roles to give."""
    roles = {ADMIN_ID: [str(ADMIN_ROLE_ID)], BOT_ID: [str(BOT_ROLE_ID)]}.get(uid, [])
    roles = roles if guild_id == GUILD_ID else []
    return {"user": user(uid), "roles": roles, "joined_at": TIMESTAMP, "deaf": False, "mute": False,
            "flags": 0, "nick": None}


def permissions(uid: int) -> int:
    return EVERYONE_PERMISSIONS | (MANAGE_GUILD if uid == ADMIN_ID else 0)


def text_channel(cid: int = CHANNEL_ID) -> Json:
    name = "general" if cid == CHANNEL_ID else f"lounge-{cid}"
    return {"id": str(cid), "type": 0, "guild_id": str(GUILD_OF[cid]), "name": name, "position": 0,
            "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
            "last_message_id": None, "rate_limit_per_user": 0, "flags": 0}


def thread(tid: int) -> Json:
    return {"id": str(tid), "type": 11, "guild_id": str(GUILD_ID), "parent_id": str(CHANNEL_ID),
            "owner_id": str(MEMBER_ID), "name": f"thread-{tid}", "message_count": 0, "member_count": 1,
            "rate_limit_per_user": 0, "flags": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                "archive_timestamp": TIMESTAMP, "locked": False}}


def dm_channel(uid: int) -> Json:
    return {"id": str(DM_ID), "type": 1, "recipients": [user(uid)], "last_message_id": None}


def channel_payload(channel_id: int, uid: int) -> Json:
    if channel_id == DM_ID:
        return dm_channel(uid)
    return thread(channel_id) if channel_id in (THREAD_A_ID, THREAD_B_ID) else text_channel(channel_id)


def role(rid: int, name: str, perms: int) -> Json:
    data = {"id": str(rid), "name": name, "permissions": str(perms), "position": int(rid != GUILD_ID),
            "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
    if rid == BOT_ROLE_ID:
        data |= {"managed": True, "tags": {"bot_id": str(BOT_ID)}}
    return data


def guild(gid: int = GUILD_ID) -> Json:
    """The first server has roles, a channel and two threads; the other only a channel."""
    roles = [role(gid, "@everyone", EVERYONE_PERMISSIONS)]
    channels, threads = [text_channel(CHANNEL_B_ID)], []
    if gid == GUILD_ID:
        roles += [role(ADMIN_ROLE_ID, "admins", MANAGE_GUILD),
                  role(BOT_ROLE_ID, "Hearth", EVERYONE_PERMISSIONS)]
        channels, threads = [text_channel()], [thread(THREAD_A_ID), thread(THREAD_B_ID)]
    return {
        "id": str(gid), "name": f"Hearth test server {gid}", "owner_id": str(OWNER_ID), "icon": None,
        "roles": roles, "channels": channels, "threads": threads,
        "members": [member(BOT_ID, gid)], "member_count": 4, "unavailable": False, "large": False,
        "features": [], "emojis": [], "stickers": [], "voice_states": [], "presences": [],
        "stage_instances": [], "guild_scheduled_events": [], "joined_at": TIMESTAMP,
        "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
        "explicit_content_filter": 0, "mfa_level": 0, "system_channel_flags": 0, "premium_tier": 0,
        "preferred_locale": "en-US", "nsfw_level": 0,
    }


def message(mid: int, channel_id: int, author: int, content: str, **extra: Any) -> Json:
    data: Json = {
        "id": str(mid), "channel_id": str(channel_id), "author": user(author), "content": content,
        "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False, "mention_everyone": False,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
        "type": 0, "flags": 0,
    }
    if channel_id in GUILD_OF:  # not a DM
        data["guild_id"] = str(GUILD_OF[channel_id])
        if author != BOT_ID:
            data["member"] = {k: v for k, v in member(author, GUILD_OF[channel_id]).items() if k != "user"}
    return data | extra
