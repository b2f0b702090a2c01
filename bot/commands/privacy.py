"""`/forget-me`: a person erases what Hearth keeps about them, themselves.

Anyone may run it, about themselves only, on the platform they write from: every message
they wrote in every chat there, the replies to those, the moderation verdicts about
either, and their usage rows (`OwnerData.forget_user`, as `hearth forget --user`). The
bare command says what it would erase; `/forget-me confirm` erases it.
"""

from __future__ import annotations

from bot.commands.spec import Command, Invocation, Option, Text
from bot.store import OwnerData

CONFIRM = "confirm"
HELP = Text("erase everything Hearth keeps about you here (/forget-me confirm)",
            "删除 Hearth 在此平台保存的关于你的一切（/forget-me confirm）")
OPTION = Text("type confirm to erase it for good", "输入 confirm 确认永久删除")
EXPLAIN = Text(
    "This erases everything Hearth keeps about you on {platform}: every message you wrote to it, in "
    "every chat, the replies to them, their moderation records and your usage counts. It cannot be "
    "undone; others' messages stay. To do it, send /forget-me confirm",
    "这会删除 Hearth 在 {platform} 上保存的关于你的一切：你在所有聊天中发给它的每条消息、对这些消息的回复、"
    "相关的审核记录以及你的用量统计。删除后无法恢复；其他人的消息不受影响。确认请发送 /forget-me confirm",
)
DONE = Text(
    "Done: erased {messages} of your messages, {replies} replies to them, {verdicts} moderation "
    "records and {usage} usage rows.",
    "已删除：你的 {messages} 条消息、{replies} 条回复、{verdicts} 条审核记录和 {usage} 条用量统计。",
)


class ForgetMeCommand:
    """`/forget-me` (see the module docstring)."""

    def __init__(self, data: OwnerData) -> None:
        self._data = data

    def spec(self) -> Command:
        return Command("forget-me", HELP, self.run, options=(Option("confirm", OPTION, choices=(CONFIRM,)),))

    async def run(self, call: Invocation) -> str:
        msg = call.msg
        if call.verb != CONFIRM:
            return EXPLAIN.get(call.lang).format(platform=msg.key.platform)
        gone = await self._data.forget_user(msg.key.platform, msg.author_id)
        return DONE.get(call.lang).format(
            messages=gone.messages, replies=gone.replies, verdicts=gone.verdicts, usage=gone.usage)
