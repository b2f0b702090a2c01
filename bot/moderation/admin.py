"""`/moderation`: admins add words to block or allow, without a restart.

    /moderation block WORD [CATEGORY]   block WORD (a phrase is fine) in this chat
    /moderation allow WORD              let WORD through the word lists and the classifier here
    /moderation remove WORD             forget WORD here
    /moderation list                    the words in force here (this chat's and global ones)
    /moderation global block|allow|remove WORD [CATEGORY]
                                        the same for every chat: operators only (HEARTH_ADMIN_IDS)

Words are scoped to the chat (`platform:channel`: a Discord channel and its
threads, a Telegram chat), so one server's admins cannot change another's
filter; only Hearth's operators set global words. Words are matched after
normalisation like the shipped lists (so "ｆｏｏ" and "f o o" match "foo").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import NotAdminError
from bot.messages import IncomingMessage, WordRule
from bot.moderation.base import WordsAware
from bot.moderation.gate import CATEGORIES, GLOBAL_SCOPE, scope_of

if TYPE_CHECKING:
    from bot.core import Hearth

DEFAULT_CATEGORY = "harassment"
MAX_WORD_CHARS = 100
USAGE = (
    "Usage: /moderation block WORD [category] | allow WORD | remove WORD | list\n"
    "       /moderation global block|allow|remove WORD [category]  (operators)\n"
    "Categories: " + ", ".join(CATEGORIES)
)


async def moderation_command(core: Hearth, msg: IncomingMessage, args: str) -> str:
    """Run `/moderation ARGS` for `msg`'s author; the reply text."""
    scope = scope_of(msg.key)
    verb, _, rest = args.partition(" ")
    if verb == "global":
        if msg.admin_key not in core.settings.admin_ids:
            raise NotAdminError("/moderation global")
        scope = GLOBAL_SCOPE
        verb, _, rest = rest.strip().partition(" ")
    if not core.is_admin(msg):
        raise NotAdminError("/moderation")
    rest = rest.strip()
    if verb == "list":
        return await _list(core, scope_of(msg.key))
    if verb not in ("block", "allow", "remove") or not rest:
        return USAGE
    reply = await _change(core, scope, verb, rest)
    if isinstance(core.gate, WordsAware):
        core.gate.words_changed()
    return reply


async def _change(core: Hearth, scope: str, verb: str, rest: str) -> str:
    where = "every chat" if scope == GLOBAL_SCOPE else "this chat"
    if verb == "remove":
        removed = await core.store.remove_word(scope, rest[:MAX_WORD_CHARS])
        return f"Removed {rest!r} for {where}." if removed else f"{rest!r} was not on the list for {where}."
    if verb == "allow":
        await core.store.add_word(WordRule(scope, rest[:MAX_WORD_CHARS], "allow", DEFAULT_CATEGORY))
        return f"Allowing {rest!r} in {where}."
    word, category = _word_and_category(rest)
    await core.store.add_word(WordRule(scope, word[:MAX_WORD_CHARS], "block", category))
    return f"Blocking {word!r} ({category}) in {where}."


def _word_and_category(rest: str) -> tuple[str, str]:
    """`kill you all violence` → ("kill you all", "violence"): a known category may end the text."""
    head, _, last = rest.rpartition(" ")
    if head and last.lower() in CATEGORIES:
        return head.strip(), last.lower()
    return rest, DEFAULT_CATEGORY


async def _list(core: Hearth, scope: str) -> str:
    rules = [r for r in await core.store.words() if r.scope in (scope, GLOBAL_SCOPE)]
    if not rules:
        return "No moderation words for this chat (the shipped lists still apply)."
    lines = [
        f"{r.action} {r.word!r}" + (f" ({r.category})" if r.action == "block" else "")
        + (" [global]" if r.scope == GLOBAL_SCOPE else "")
        for r in rules
    ]
    return "Moderation words:\n" + "\n".join(lines)
