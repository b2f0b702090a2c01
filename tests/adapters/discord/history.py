"""What the fake Discord keeps of each channel: every message, as `GET /channels/{id}/messages`
pages through them (newest first, `after`/`before`/`limit` as Discord reads them)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Json = dict[str, Any]
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class ChannelHistory:
    """Messages by channel and id; a bot's edits and deletions show as on Discord."""

    def __init__(self) -> None:
        self._messages: dict[int, dict[int, Json]] = defaultdict(dict)

    def add(self, data: Json) -> None:
        self._messages[int(data["channel_id"])][int(data["id"])] = data

    def get(self, channel: int, message: int) -> Json:
        return self._messages[channel][message]

    def edit(self, channel: int, message: int, content: str) -> None:
        if message in self._messages[channel]:
            self._messages[channel][message] = self._messages[channel][message] | {"content": content}

    def remove(self, channel: int, message: int) -> None:
        self._messages[channel].pop(message, None)

    def page(self, channel: int, query: dict[str, str]) -> list[Json]:
        """Discord's answer: with `after`, the oldest `limit` after it; else the newest `limit`
        (before `before`, when given). Newest first either way."""
        limit = min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
        ids = sorted(self._messages[channel])
        if "after" in query:
            ids = [i for i in ids if i > int(query["after"])][:limit]
        else:
            if "before" in query:
                ids = [i for i in ids if i < int(query["before"])]
            ids = ids[-limit:]
        return [self._messages[channel][i] for i in reversed(ids)]
