"""Hearth's own commands: /model, /persona, /reset, /status, /hearth-channel, /help."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable

from bot.commands.spec import Access, Command, Invocation, Option, Subcommand, Text, always
from bot.commands.texts import TEXTS, say
from bot.errors import PersonaTooLongError
from bot.messages import ConversationKey
from bot.persona import MAX_PERSONA_CHARS, Personas
from bot.serving import ModelService
from bot.store import ChannelSettings, Conversations
from bot.store.faults import StoreHealth
from engine.fleet import ReplicaStatus
from engine.sampling import describe
from engine.types import Sampling

ANSWER_ALL = "answer_all"
SCOPES = ("global", "channel")
UNPIN = "default"
CHANNEL_MODES = ("on", "off")


class ModelCommand:
    """`/model` lists the registry (anyone); `/model NAME` switches the model every channel
    is answered by (operators: global state, and a model may download, install or run a
    repository's code when loaded); `/model NAME channel` pins this channel (its admins)."""

    def __init__(self, models: ModelService) -> None:
        self._models = models

    def spec(self) -> Command:
        name = Option("name", Text("the model to serve; empty lists them", "要切换的模型；留空则列出"),
                      complete=self.complete)
        scope = Option("scope", Text("global (default), or channel: only here (\"default\" unpins)",
                                     "global（默认），或 channel：只在本频道（default 取消）"),
                       choices=SCOPES)
        help_text = Text("list models; /model NAME switches (operators); NAME channel pins here (admins)",
                         "查看模型；/model 名称 切换（运营者）；名称 channel 只在本频道（管理员）")
        return Command("model", help_text, self.run, access=model_access, options=(name, scope))

    def complete(self, typed: str) -> list[str]:
        return [n for n in self._models.registry.names() if typed.lower() in n.lower()]

    async def run(self, call: Invocation) -> str:
        if not call.args:
            return await self._listing(call)
        name, _, scope = call.args.rpartition(" ")
        if scope in SCOPES and name:
            if scope == "channel":
                serving = await self._models.pin(call.msg.key, None if name == UNPIN else name)
                return say("model_pinned", call.lang, model=serving)
        else:
            name = call.args
        spec = await self._models.switch(name)
        return say("model_serving", call.lang, model=spec.name, quantization=spec.quantization)

    async def _listing(self, call: Invocation) -> str:
        current = self._models.spec.name
        pinned = await self._models.pinned(call.msg.key)
        here = "\n" + say("model_pinned_here", call.lang, model=pinned) if pinned else ""
        served = await self._models.served()
        if served is not None:
            return say("model_served_list", call.lang) + "\n" + "\n".join(
                f"{'*' if n == current else ' '} {n}" for n in served) + here
        lines = [
            f"{'*' if s.name == current else ' '} {s.name} [{s.quantization}, {s.device}] {s.description}"
            for s in self._models.registry
        ]
        return say("model_list", call.lang) + "\n" + "\n".join(lines) + here


def model_access(args: str) -> Access:
    """Listing is for anyone; pinning this channel (`NAME channel`) for its admins; the
    model that serves everyone (`NAME`, `NAME global`) for operators only."""
    if not args:
        return Access.ANYONE
    name, _, scope = args.rpartition(" ")
    return Access.ADMIN if name and scope == "channel" else Access.OPERATOR


class PersonaCommand:
    """`/persona` shows the template; `set TEXT` and `reset` change it for the channel (admins)."""

    def __init__(
        self, personas: Personas, channels: ChannelSettings, tokens: Callable[[str], Awaitable[int]],
        token_limit: Callable[[], int],
    ) -> None:
        self._personas = personas
        self._channels = channels
        self._tokens = tokens
        self._token_limit = token_limit

    def spec(self) -> Command:
        text = Option(
            "text", Text("the template: {bot_name}, {platform}, {channel_name}, {date}",
                         "模板：{bot_name}、{platform}、{channel_name}、{date}"),
            required=True, rest=True,
        )
        return Command(
            "persona", Text("show the persona; set or reset it (admins)", "查看人设；设置或重置（管理员）"),
            self.run, access=_persona_access,
            subcommands=(
                Subcommand("show", Text("show this channel's persona template", "查看本频道的人设模板")),
                Subcommand("set", Text("override the persona here (admins)", "为本频道设置人设（管理员）"),
                           (text,)),
                Subcommand("reset", Text("go back to the default persona (admins)",
                                         "恢复默认人设（管理员）")),
            ),
        )

    async def _check_size(self, call: Invocation) -> None:
        """Refuse, naming the limit, a persona over MAX_PERSONA_CHARS or one that would
        leave less than half the prompt budget for history (PersonaTooLongError)."""
        if len(call.rest) > MAX_PERSONA_CHARS:
            raise PersonaTooLongError(len(call.rest), MAX_PERSONA_CHARS, "characters")
        tokens = await self._tokens(await self._personas.render(call.rest, call.msg))
        if tokens > (limit := self._token_limit()):
            raise PersonaTooLongError(tokens, limit, "tokens")

    async def run(self, call: Invocation) -> str:
        key = call.msg.key
        if call.verb == "set" and not call.rest:
            return say("persona_set_usage", call.lang)
        if call.verb == "set":
            await self._check_size(call)
            await self._channels.set_channel_persona(key, call.rest)
            return say("persona_set", call.lang)
        if call.verb == "reset":
            await self._channels.set_channel_persona(key, None)
            return say("persona_reset", call.lang)
        return say("persona_template", call.lang) + "\n" + await self._personas.template(key)


def _persona_access(args: str) -> Access:
    """Anyone may look at the persona; changing it is for admins."""
    return Access.ADMIN if args.split(" ")[0] in ("set", "reset") else Access.ANYONE


class ResetCommand:
    """`/reset`: forget this conversation (anyone in a direct chat, admins in groups)."""

    def __init__(self, conversations: Conversations) -> None:
        self._conversations = conversations

    def spec(self) -> Command:
        help_text = Text("forget this conversation (admins, in groups)", "清除本会话的记忆（群组中仅管理员）")
        return Command("reset", help_text, self.run, access=always(Access.DIRECT_OR_ADMIN))

    async def run(self, call: Invocation) -> str:
        deleted = await self._conversations.reset(call.msg.key)
        return say("reset_done_one" if deleted == 1 else "reset_done", call.lang, count=deleted)


class StatusCommand:
    """`/status`: model, queue, uptime, usage, prefix-cache hit rate for anyone; the engine's
    details (restarts, last error, replicas, the database, sampling) for admins only. URLs
    come redacted and errors as short reasons from the engine: nothing here is a secret."""

    def __init__(self, models: ModelService, queue_depth: Callable[[], int],
                 clock: Callable[[], float] = time.monotonic, *, sampling: Sampling | None = None,
                 database: StoreHealth | None = None) -> None:
        self._models = models
        self._database = database
        self._queue_depth = queue_depth
        self._sampling = sampling  # what the settings fix; the model chooses the rest
        self._clock = clock
        self._started = clock()

    def spec(self) -> Command:
        return Command("status", Text("model, queue, uptime, usage", "模型、队列、运行时间、用量"), self.run,
                       shows_more_to=Access.ADMIN)

    async def run(self, call: Invocation) -> str:
        stats, lang = self._models.stats(), call.lang
        uptime = dt.timedelta(seconds=int(self._clock() - self._started))
        state = say(f"state_{stats.state}", lang) if f"state_{stats.state}" in TEXTS else stats.state
        lines = [say("status_model", lang, model=stats.model, quantization=stats.quantization, state=state)]
        if call.level >= Access.ADMIN:
            lines += await self._details(lang)
        return "\n".join([
            *lines,
            say("status_queue", lang, waiting=self._queue_depth(), running=stats.running),
            say("status_uptime", lang, uptime=uptime),
            say("status_served", lang, replies=stats.replies, reply_tokens=stats.reply_tokens,
                prompt_tokens=stats.prompt_tokens),
            say("status_hit_rate", lang, rate=f"{stats.hit_rate:.1%}"),
        ])

    async def _details(self, lang: str) -> list[str]:
        """What only admins see: the engine's restarts and errors, each replica, the database."""
        stats = self._models.stats()
        engine = say("status_engine", lang, restarts=stats.restarts)
        if stats.last_error:
            engine += say("status_last_error", lang, error=stats.last_error)
        if stats.note:
            engine += f"; {stats.note}"
        if stats.asleep:
            engine += say("status_asleep", lang, models=", ".join(stats.asleep))
        sampling = describe(self._sampling, stats.sampling, stats.sampling_origin)
        return [
            engine,
            *[_replica_line(r, lang) for r in await self._models.replicas() or []],
            *([_database_line(self._database, lang)] if self._database is not None else []),
            say("status_sampling", lang, sampling=sampling or say("status_server_decides", lang)),
        ]


def _database_line(health: StoreHealth, lang: str) -> str:
    """`database: ok`, or how long it has been failing and why."""
    if health.state == "ok":
        if health.outages:
            return say("status_database_outages", lang, outages=health.outages)
        return say("status_database_ok", lang)
    return say("status_database_failing", lang, seconds=f"{health.failing_for:.0f}", reason=health.reason)


def _replica_line(replica: ReplicaStatus, lang: str) -> str:
    """One remote server: its health and, from vLLM's /metrics, its cache and queue."""
    state = (say("status_replica_up", lang) if replica.healthy
             else say("status_replica_down", lang, error=replica.last_error))
    line = say("status_replica", lang, url=replica.url, state=state, replies=replica.replies)
    if replica.metrics is not None:
        m = replica.metrics
        line += say("status_replica_metrics", lang, rate=f"{m.hit_rate:.1%}", running=m.running,
                    waiting=m.waiting)
    return line


class ChannelModes:
    """Whether the bot answers every message in a channel, or only mentions and replies."""

    def __init__(self, channels: ChannelSettings) -> None:
        self._channels = channels

    async def answers_all(self, key: ConversationKey) -> bool:
        return await self._channels.get_channel_flag(key, ANSWER_ALL) is not None

    def spec(self) -> Command:
        mode = Option(
            "mode", Text("on: answer every message; off: only mentions and replies",
                         "on：回复每条消息；off：只回复提及和回复"),
            required=True, choices=CHANNEL_MODES,
        )
        return Command(
            "hearth-channel",
            Text("answer every message in this channel, or only mentions (admins)",
                 "在本频道回复每条消息，或只回复提及（管理员）"),
            self.run, access=always(Access.ADMIN), options=(mode,), groups_only=True,
        )

    async def run(self, call: Invocation) -> str:
        mode = call.verb.lower()
        if mode not in CHANNEL_MODES:
            return say("channel_usage", call.lang)
        await self._channels.set_channel_flag(call.msg.key, ANSWER_ALL, "1" if mode == "on" else None)
        return say(f"channel_{mode}", call.lang)

