"""Tests of the moderation gate, layer by layer and through the pipeline."""

from __future__ import annotations

from bot.messages import ConversationKey
from bot.moderation.normalise import views
from bot.moderation.wordlists import ListMatch, load_word_lists

ROOM = ConversationKey("telegram", "room")


def listed(text: str) -> ListMatch:
    """The shipped word lists' finding for `text` (layers 1 and 2 only)."""
    return load_word_lists().match(views(text), text)


def categories_of(text: str) -> set[str]:
    return {e.category for e in listed(text).blocked}
