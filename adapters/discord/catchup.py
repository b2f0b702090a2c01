"""Reading back what a gateway gap hid.

Discord delivers a message once, to the session that is live when it is sent. A RESUME
replays what the session missed; a new session (READY after INVALID_SESSION, after
Discord refused to let the shard resume, or after this process restarted) does not:
whatever was sent in between is never delivered. So after every new session Hearth
reads the recent history (REST) of the channels where it could have been asked
something, and takes what it finds as if it had just arrived:

- channels with messages delivered in this process (read after the newest one);
- conversations with user messages stored within HEARTH_RECOVER_WINDOW_S (read after
  the newest stored one), so a kill -9 and a restart catch up too;
- channels set to answer every message (`/hearth-channel on`).

Everything is bounded: messages older than the window are never read (the read starts
at a snowflake of "now - window"), at most `limit` messages per channel and `channels`
channels per catch-up. Duplicates are harmless: ids delivered or read in this process
are skipped (`Seen`), and the store ignores a message id it already has.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import aiohttp
import discord

from adapters.discord.convert import PLATFORM, channel_id
from bot.commands.builtin import ANSWER_ALL

if TYPE_CHECKING:
    from bot.store import RecentActivity

log = logging.getLogger(__name__)

PER_CHANNEL = 100  # messages read back per channel (one REST page)
CHANNELS = 50  # channels read back per catch-up
SEEN_KEPT = 20_000  # message ids remembered as delivered


class Seen:
    """Message ids delivered (or read back) in this process, and each channel's newest one."""

    def __init__(self, size: int = SEEN_KEPT) -> None:
        self._size = size
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._newest: OrderedDict[int, int] = OrderedDict()  # channel → newest id, most recent last

    def add(self, channel: int, message: int) -> bool:
        """Note `message` in `channel`; False when it was noted already (a duplicate)."""
        if message in self._ids:
            return False
        self._ids[message] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        self._newest[channel] = max(message, self._newest.pop(channel, 0))
        if len(self._newest) > self._size:
            self._newest.popitem(last=False)
        return True

    def __contains__(self, message: int) -> bool:
        return message in self._ids

    def channels(self) -> list[tuple[int, int]]:
        """(channel, newest message id) of each channel, the most recently active first."""
        return list(reversed(self._newest.items()))


class CatchUp:
    """Finds the messages a gap hid; `seen` is fed by the adapter with every delivery."""

    def __init__(
        self, activity: RecentActivity | None, window_s: float, *, limit: int = PER_CHANNEL,
        channels: int = CHANNELS, clock: Callable[[], float] = time.time,
    ) -> None:
        self.seen = Seen()
        self._activity = activity
        self._window_s = window_s
        self._limit = limit
        self._channels = channels
        self._clock = clock

    async def missed(self, client: discord.Client) -> AsyncIterator[discord.Message]:
        """Messages not seen yet, within the window, oldest first per channel."""
        since = self._clock() - self._window_s
        floor = discord.utils.time_snowflake(dt.datetime.fromtimestamp(since, dt.UTC), high=True)
        for cid, after in (await self._candidates(since)).items():
            channel = await _messageable(client, cid)
            if channel is None:
                continue
            try:
                async for message in channel.history(
                    after=discord.Object(max(after, floor)), oldest_first=True, limit=self._limit,
                ):
                    if message.id not in self.seen and message.created_at.timestamp() >= since:
                        yield message
            except (discord.HTTPException, aiohttp.ClientError) as exc:  # that channel only
                log.info("could not read back channel %d: %s", cid, exc)

    async def _candidates(self, since: float) -> dict[int, int]:
        """Channel id → the id to read after (0: from the window's start), at most `channels`."""
        found: dict[int, int] = {}

        def note(cid: int, after: int) -> None:
            if cid in found or len(found) < self._channels:
                found[cid] = max(after, found.get(cid, 0))

        for cid, newest in self.seen.channels():
            note(cid, newest)
        if self._activity is not None:
            for key, newest_id in await self._activity.recent_conversations(PLATFORM, since, self._channels):
                if (key.thread or key.channel).isdigit():
                    note(channel_id(key), int(newest_id) if newest_id and newest_id.isdigit() else 0)
            for channel in await self._activity.channels_with_flag(PLATFORM, ANSWER_ALL):
                if channel.isdigit():
                    note(int(channel), 0)
        return found


async def _messageable(client: discord.Client, cid: int) -> discord.abc.Messageable | None:
    """The channel, from the cache (servers' channels and threads) or asked of Discord
    (a DM, an archived thread); None when it is gone or cannot be read."""
    channel = client.get_channel(cid)
    if channel is None:
        try:
            channel = await client.fetch_channel(cid)
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            log.info("could not find channel %d to read back: %s", cid, exc)
            return None
    return channel if isinstance(channel, discord.abc.Messageable) else None
