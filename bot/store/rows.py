"""Between rows and values: what the SQL stores share (SQLite's and PostgreSQL's)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.messages import ConversationKey, PendingMessage, Undelivered, Usage, Verdict

STORED_ROLES = frozenset({"user", "assistant"})
SCORE_DECIMALS = 3  # a stored moderation score: 0.001 apart is no difference to a threshold


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
    """message_id, direction, flagged, layer, categories, category_scores, action; the
    two JSON columns as `verdict_columns` writes them."""
    message_id, direction, flagged, layer, categories, scores, action = row
    stored_scores = json.loads(scores)
    verdict = Verdict(
        flagged=bool(flagged),
        layer=layer,
        categories={name: False for name in stored_scores} | dict.fromkeys(json.loads(categories), True),
        category_scores=stored_scores,
        action=action,
    )
    return (message_id, direction, verdict)


def verdict_columns(verdict: Verdict) -> tuple[str, str]:
    """A verdict's categories and scores as stored (JSON, no spaces): the names of the
    flagged categories, and the scores rounded to SCORE_DECIMALS that stay above zero.

    A gate verdict names all 13 categories with a score each, nearly all false and 0.0:
    stored whole, verdicts were three quarters of the database. Read back
    (`verdict_from_row`), a category is flagged as before, and unflagged where it has a
    score; a category neither flagged nor scored is left out (see `compact_verdict`)."""
    flagged = [name for name, on in verdict.categories.items() if on]
    scores = {name: rounded for name, score in verdict.category_scores.items()
              if (rounded := round(score, SCORE_DECIMALS))}
    return json.dumps(flagged, separators=(",", ":")), json.dumps(scores, separators=(",", ":"))


def compact_verdict(verdict: Verdict) -> Verdict:
    """`verdict` as every store gives it back (see `verdict_columns`), with dicts of its own."""
    categories, scores = verdict_columns(verdict)
    row = (None, "", verdict.flagged, verdict.layer, categories, scores, verdict.action)
    return verdict_from_row(row)[2]


def word_scope(platform: str, channel: str) -> str:
    """The moderation words' scope of a channel, as `bot.moderation.gate.scope_of` names it."""
    return f"{platform}:{channel}"


def moved_platform_id(old_channel: str, platform_id: str) -> str:
    """A platform message id moved out of `old_channel`, kept apart from the new channel's ids."""
    return f"{old_channel}/{platform_id}"


def forget_channel(conversation_ids: dict[ConversationKey, int], platform: str, channel: str) -> None:
    """Forget the remembered row ids of a moved channel's conversations: each now names a
    conversation of the new channel, or nothing."""
    for key in [k for k in conversation_ids if (k.platform, k.channel) == (platform, channel)]:
        del conversation_ids[key]


def usage_values(row: Usage) -> tuple[Any, ...]:
    """A usage row's columns, in the order the stores' ADD_USAGE statements take them."""
    return (row.day, row.platform, row.channel, row.author_id, row.author_name, row.messages,
            row.refused, row.prompt_tokens, row.cached_tokens, row.reply_tokens)


def undelivered_from_row(row: Sequence[Any]) -> Undelivered:
    """id, platform, channel, thread, text, meta, the question's platform id, created_at."""
    message_id, platform, channel, thread, text, meta, question, created = row
    extra = json.loads(meta) if meta else {}
    return Undelivered(
        message_id, ConversationKey(platform, channel, thread), str(extra.get("deliver", text)),
        tuple(str(i) for i in extra.get("shown", ())), question, created,
    )
