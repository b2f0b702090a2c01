"""Per-channel state that follows a platform when it changes a chat's id."""

from __future__ import annotations

from collections.abc import Callable

from bot.store import ChannelSettings


class ChannelMover:
    """Moves everything kept about a channel to its new id (a Telegram group upgraded to a
    supergroup), then tells the moderation gate to re-read the admin words that moved."""

    def __init__(self, channels: ChannelSettings, words_changed: Callable[[], None]) -> None:
        self._channels = channels
        self._words_changed = words_changed

    async def move_channel(self, platform: str, old_channel: str, new_channel: str) -> bool:
        """Move `old_channel`'s conversations, persona, flags and words to `new_channel`, in
        one transaction; False when nothing was stored under the old id (already moved)."""
        moved = await self._channels.move_channel(platform, old_channel, new_channel)
        if moved:
            self._words_changed()
        return moved
