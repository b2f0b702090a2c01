"""Between rows and values: what the SQL stores share (SQLite's and PostgreSQL's)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.messages import ConversationKey, PendingMessage, Verdict

STORED_ROLES = frozenset({"user", "assistant"})


def check_role(role: str) -> None:
    """Refuse a role that is never stored (a system prompt is built, not kept)."""
    if role not in STORED_ROLES:
        raise ValueError(f"only {sorted(STORED_ROLES)} messages are stored, not {role!r}")


def meta_json(meta: Mapping[str, object] | None) -> str | None:
    """A message's `meta` as stored: JSON text, or NULL when there is none."""
    return json.dumps(dict(meta)) if meta else None


def pending_from_row(row: Sequence[Any]) -> PendingMessage:
    """id, platform, channel, thread, author_id, author_name, text, platform id, created_at, meta."""
    message_id, platform, channel, thread, author_id, author_name, text, platform_id, created, meta = row
    extra = json.loads(meta) if meta else {}
    return PendingMessage(
        message_id, ConversationKey(platform, channel, thread), author_id, author_name, text, platform_id,
        created, bool(extra.get("direct", False)), str(extra.get("channel_name", "")),
        tuple(str(i) for i in extra.get("shown", ())),
    )


def verdict_from_row(row: Sequence[Any]) -> tuple[int | None, str, Verdict]:
    """message_id, direction, flagged, layer, categories, category_scores, action."""
    message_id, direction, flagged, layer, categories, scores, action = row
    verdict = Verdict(
        flagged=bool(flagged),
        layer=layer,
        categories=json.loads(categories),
        category_scores=json.loads(scores),
        action=action,
    )
    return (message_id, direction, verdict)
