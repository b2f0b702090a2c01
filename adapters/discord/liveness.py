"""Whether this process's gateway shards are up, and when to give up on one.

discord.py reconnects a shard by itself, forever; Hearth would rather exit (and be
restarted, or alert someone) than run deaf. Each shard this process runs counts on
its own: one shard down longer than `down_s` ends the adapter even while the others
are fine, because the servers on that shard get no answers. A shard counts as down
from its first failed connection, and from the moment discord.py starts connecting
it until its READY (so a gateway unreachable at start-up is caught too); shards still
waiting their turn to IDENTIFY (Discord allows one every 5 s) are not counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from adapters.discord.convert import PLATFORM
from bot.errors import PlatformDownError

CHECKS_PER_LIMIT = 4  # look this many times per `down_s`, at most once a second


class ShardLiveness:
    """The shards that are down and since when; `ready` once every shard has been up."""

    def __init__(self, down_s: float) -> None:
        self.down_s = down_s
        self.ready = asyncio.Event()
        self._down_since: dict[int, float] = {}

    def up(self, shard_id: int) -> None:
        """The shard has a gateway session (READY or RESUMED)."""
        self._down_since.pop(shard_id, None)

    def down(self, shard_id: int) -> None:
        """The shard lost its session, or is connecting; the earliest time counts."""
        self._down_since.setdefault(shard_id, asyncio.get_running_loop().time())

    def all_ready(self) -> None:
        """discord.py's READY for the whole client: every shard connected and its servers loaded."""
        self.ready.set()

    def longest_down(self) -> tuple[int, float] | None:
        """The shard down longest and for how many seconds; None when all are up."""
        if not self._down_since:
            return None
        shard_id = min(self._down_since, key=self._down_since.__getitem__)
        return shard_id, asyncio.get_running_loop().time() - self._down_since[shard_id]

    async def watch(self, close: Callable[[], Awaitable[None]]) -> PlatformDownError:
        """Until a shard is down longer than `down_s`: then `close()`, and the error to raise
        (returned, so that the task running this does not count as failed)."""
        while True:
            await asyncio.sleep(min(1.0, self.down_s / CHECKS_PER_LIMIT))
            worst = self.longest_down()
            if worst is not None and worst[1] > self.down_s:
                await close()
                shard_id, seconds = worst
                return PlatformDownError(PLATFORM, seconds, f"gateway shard {shard_id} did not come back")
