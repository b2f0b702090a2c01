"""`/moderation`: admins add words to block or allow, without a restart.

    /moderation block WORD [CATEGORY]   block WORD (a phrase is fine) in this chat
    /moderation allow WORD              let WORD through the word lists and the classifier here
    /moderation remove WORD             forget WORD here
    /moderation list                    the words in force here (this chat's and global ones)
    /moderation global block|allow|remove WORD [CATEGORY]
                                        the same for every chat: operators only (HEARTH_ADMIN_IDS)

Words are scoped to the chat (`platform:channel`: a Discord channel and its
threads, a Telegram chat), so one server's admins cannot change another's
filter; only Hearth's operators set global words. Who may run what is declared
in the command's `access` rule and checked in one place (`bot.commands.table`). Words are matched after
normalisation like the shipped lists (so "ｆｏｏ" and "f o o" match "foo").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.commands.spec import Access, Command, Invocation, Option, Subcommand, Text
from bot.commands.texts import say
from bot.messages import WordRule
from bot.moderation.gate import CATEGORIES, GLOBAL_SCOPE, scope_of
from bot.store import ModerationWords

DEFAULT_CATEGORY = "harassment"
MAX_WORD_CHARS = 100
VERBS = ("block", "allow", "remove")


class ModerationCommand:
    """`/moderation` for admins; `global` changes are for operators (HEARTH_ADMIN_IDS)."""

    def __init__(self, words: ModerationWords, words_changed: Callable[[], None]) -> None:
        self._words = words
        self._words_changed = words_changed

    def spec(self) -> Command:
        word = Option("word", Text("the word or phrase", "词或短语"), required=True, rest=True)
        category = Option("category", Text("what kind of word it is", "类别"), choices=CATEGORIES)
        scope = Option("scope", Text("global: every chat (operators)", "global：所有聊天（运营者）"),
                       choices=(GLOBAL_SCOPE,))
        help_text = Text("words to block or allow in this chat (admins)", "本聊天屏蔽或放行的词（管理员）")
        return Command(
            "moderation", help_text, self.run,
            access=lambda args: Access.OPERATOR if args.split(" ")[0] == "global" else Access.ADMIN,
            subcommands=(
                Subcommand("block", Text("block a word here", "在此屏蔽一个词"), (word, category, scope)),
                Subcommand("allow", Text("let a word through here", "在此放行一个词"), (word, scope)),
                Subcommand("remove", Text("forget a word here", "在此移除一个词"), (word, scope)),
                Subcommand("list", Text("the words in force here", "此处生效的词")),
            ),
            compose=_compose,
        )

    async def run(self, call: Invocation) -> str:
        scope = scope_of(call.msg.key)
        verb, _, rest = call.args.partition(" ")
        if verb == "global":
            scope = GLOBAL_SCOPE
            verb, _, rest = rest.strip().partition(" ")
        rest = rest.strip()
        if verb == "list":
            return await self._list(scope_of(call.msg.key), call.lang)
        if verb not in VERBS or not rest:
            return say("moderation_usage", call.lang, categories=", ".join(CATEGORIES))
        reply = await self._change(scope, verb, rest, call.lang)
        self._words_changed()
        return reply

    async def _change(self, scope: str, verb: str, rest: str, lang: str) -> str:
        where = say("moderation_every_chat" if scope == GLOBAL_SCOPE else "moderation_this_chat", lang)
        if verb == "remove":
            removed = await self._words.remove_word(scope, rest[:MAX_WORD_CHARS])
            return say("moderation_removed" if removed else "moderation_not_listed", lang,
                       word=repr(rest), where=where)
        if verb == "allow":
            await self._words.add_word(WordRule(scope, rest[:MAX_WORD_CHARS], "allow", DEFAULT_CATEGORY))
            return say("moderation_allowing", lang, word=repr(rest), where=where)
        word, category = _word_and_category(rest)
        await self._words.add_word(WordRule(scope, word[:MAX_WORD_CHARS], "block", category))
        return say("moderation_blocking", lang, word=repr(word), category=category, where=where)

    async def _list(self, scope: str, lang: str) -> str:
        rules = [r for r in await self._words.words() if r.scope in (scope, GLOBAL_SCOPE)]
        if not rules:
            return say("moderation_none", lang)
        lines = [
            f"{r.action} {r.word!r}" + (f" ({r.category})" if r.action == "block" else "")
            + (" [global]" if r.scope == GLOBAL_SCOPE else "")
            for r in rules
        ]
        return say("moderation_words", lang) + "\n" + "\n".join(lines)


def _compose(verb: str, values: Mapping[str, str]) -> str:
    """Slash-command options back into text: `global block WORD category`."""
    words = [values.get("scope", ""), verb, values.get("word", ""), values.get("category", "")]
    return " ".join(w for w in words if w)


def _word_and_category(rest: str) -> tuple[str, str]:
    """`kill you all violence` → ("kill you all", "violence"): a known category may end the text."""
    head, _, last = rest.rpartition(" ")
    if head and last.lower() in CATEGORIES:
        return head.strip(), last.lower()
    return rest, DEFAULT_CATEGORY
