"""What the benchmarks say to the bot: ordinary chat lines, in English and Chinese."""

from __future__ import annotations

from typing import Protocol

from bot.context import render_turns
from bot.messages import IncomingMessage, StoredMessage
from engine.types import ChatMessage

TEXTS = (
    "Hi! Could you recommend a good book for a long train ride this weekend?",
    "你好！周末坐很久的火车，能推荐一本好书吗？",
    "What is the difference between a list and a tuple in Python, in two sentences?",
    "我们团队下周要开会讨论新项目的计划，你能帮我列一个简单的议程吗？",
    "My sourdough never rises properly. What am I probably doing wrong?",
    "今天天气很好，适合去公园散步。你有什么推荐的户外活动吗？",
    "Can you explain what a prefix cache is to someone who has never heard of one?",
    "请用三句话解释一下什么是机器学习。",
    "Write a short, friendly reminder for the channel that the meeting moved to Friday.",
    "我想学做红烧肉，需要准备哪些材料？",
    "Which is better for a beginner: learning the guitar or the piano? Why?",
    "帮我想一个适合猫咪的名字，它是一只很安静的橘猫。",
    "Summarise the plot of a heist movie in one paragraph, with a twist at the end.",
    "明天要去面试了，有点紧张，有什么建议吗？",
    "How do I politely decline an invitation to a party I do not want to go to?",
    "你觉得早上喝咖啡好还是喝茶好？",
)


class SystemPrompts(Protocol):
    """Where the system prompt for a message comes from (`App.personas`)."""

    async def system_prompt(self, msg: IncomingMessage) -> str: ...


def text_for(channel: int, turn: int = 0) -> str:
    """The chat line a channel sends on a turn: every channel and turn gets a varied one."""
    return TEXTS[(channel * 7 + turn * 3) % len(TEXTS)]


async def first_turn_prompt(personas: SystemPrompts, msg: IncomingMessage) -> list[ChatMessage]:
    """The prompt the pipeline builds for `msg` as a conversation's first message."""
    stored = StoredMessage(0, "user", msg.author_id, msg.author_name, msg.text, 0.0)
    turns = render_turns([[stored]], named=not msg.is_direct)
    return [ChatMessage("system", await personas.system_prompt(msg)), *turns]
