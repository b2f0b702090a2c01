"""`hearth bench switch`: an admin switches the model while other channels keep talking.

The clock starts when the admin's `/model NAME` command is handed to the app's command table.
Messages sent on other channels while the switch runs wait for the new model
(the engine stops taking requests before it unloads the old one), so the first
reply any of them gets comes from the new model; one more message is sent as
soon as the command returns.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.harness import BenchChannel, bench_app, channel_message
from bench.workload import text_for
from bot.app.builder import App
from bot.app.settings import Settings
from bot.commands.table import CONSOLE
from bot.messages import ConversationKey, IncomingMessage
from engine.base import Engine

DEFAULT_TARGET = "demo-awq"
DEFAULT_DURING = 8
DEFAULT_REPLY_TOKENS = 16
SEND_AFTER_S = 0.05  # the switch has begun (new requests are held) by then
TAG = "sw"


@dataclass(frozen=True, slots=True)
class SwitchPlan:
    target: str = DEFAULT_TARGET
    during: int = DEFAULT_DURING
    reply_tokens: int = DEFAULT_REPLY_TOKENS
    restore: bool = False  # switch back afterwards (tests share one engine)


@dataclass(frozen=True, slots=True)
class SwitchResult:
    from_model: str
    to_model: str
    serving: str
    command_reply: str
    command_s: float
    first_reply_s: float | None
    sent: int
    answered: int
    mode: str = "auto"
    new_model_first_reply_s: float | None = None
    longest_wait_s: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "switch",
            "from_model": self.from_model,
            "to_model": self.to_model,
            "serving": self.serving,
            "command_reply": self.command_reply,
            "command_s": round(self.command_s, 3),
            "time_to_first_reply_s": None if self.first_reply_s is None else round(self.first_reply_s, 3),
            "sent_during_switch": self.sent,
            "answered_during_switch": self.answered,
            "answered_ratio": round(self.answered / self.sent, 3) if self.sent else None,
            "mode": self.mode,
            "new_model_first_reply_s": _rounded(self.new_model_first_reply_s),
            "longest_wait_s": _rounded(self.longest_wait_s),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def run_switch(settings: Settings, engine: Engine, plan: SwitchPlan) -> SwitchResult:
    """Switch `engine` to `plan.target` through the admin command, with traffic on other channels."""
    original = engine.spec.name
    async with bench_app(settings, engine, plan.reply_tokens) as app:
        admin = operator()
        channel = BenchChannel()
        try:
            return await _measure(app, admin, channel, plan, original)
        finally:
            if plan.restore and app.models.spec.name != original:
                await app.commands.run(admin, "model", original)


def operator() -> IncomingMessage:
    """Who switches: the model every chat gets is an operator's to switch (the terminal's
    user, the owner at the keyboard, is one)."""
    return IncomingMessage(ConversationKey(CONSOLE, "bench"), "owner", "owner", "", "switch", is_direct=True)


async def _measure(
    app: App, admin: IncomingMessage, channel: BenchChannel, plan: SwitchPlan, original: str
) -> SwitchResult:
    during = [channel_message(TAG, c + 1, text_for(c)) for c in range(plan.during)]
    after = channel_message(TAG, plan.during + 1, text_for(plan.during))
    start = time.perf_counter()
    command = asyncio.create_task(app.commands.run(admin, "model", plan.target))
    tasks: list[asyncio.Task[None]] = []
    answered_at: dict[str, float] = {}

    async def answer(msg: IncomingMessage) -> None:
        await app.pipeline.handle(msg, channel)
        answered_at[msg.message_id] = time.perf_counter() - start

    try:
        await asyncio.sleep(SEND_AFTER_S)
        tasks = [asyncio.create_task(answer(msg)) for msg in during]
        reply = await command
        command_s = time.perf_counter() - start
        tasks.append(asyncio.create_task(answer(after)))
        await asyncio.gather(*tasks)
    finally:
        for task in [command, *tasks]:
            task.cancel()
        await asyncio.gather(command, *tasks, return_exceptions=True)
    firsts = [channel.first_sent[m.key] - start for m in [*during, after] if m.key in channel.first_sent]
    # Complete replies, not the "switching models" notice a waiting message first gets.
    waits = [answered_at[m.message_id] - SEND_AFTER_S for m in during if m.message_id in answered_at]
    new_first = answered_at.get(after.message_id)
    return SwitchResult(
        original, plan.target, app.models.spec.name, reply, command_s,
        min(firsts) if firsts else None, len(during), await _answered(app, during),
        app.settings.switch_mode, new_first, max(waits) if waits else None,
    )


async def _answered(app: App, messages: list[IncomingMessage]) -> int:
    """Messages that got a generated reply (an apology for a failure is not one)."""
    answered = 0
    for msg in messages:
        history = await app.store.history(msg.key)
        answered += any(m.role == "assistant" and m.reply_tokens > 0 for m in history)
    return answered
