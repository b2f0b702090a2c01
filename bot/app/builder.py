"""The composition root: the only place that knows every concrete class and builds them.

Like python-telegram-bot's `ApplicationBuilder`: start from the settings, replace
any part before `build()` (tests and benchmarks hand in a fake engine, an
in-memory store, a fixed clock, a fixed-length sampling), then enter the built
`App`. Parts handed in stay the caller's to open and close; parts the app built
itself it also starts and stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from bot.access import AccessPolicy, AccessRules
from bot.app.checks import open_store
from bot.app.gate import build_gate
from bot.app.health import Readiness, StoreProbe, engine_probe
from bot.app.lease import holding_lease
from bot.app.metrics_server import MetricsServer
from bot.app.quotas import build_quotas, exemption
from bot.app.settings import Settings
from bot.app.stores import store_for
from bot.app.upkeep import pruning
from bot.boundary import ErrorBoundary
from bot.channels import ChannelMover
from bot.commands import Admins, Commands
from bot.commands.access import AccessCommand
from bot.commands.builtin import (
    ChannelModes,
    ModelCommand,
    PersonaCommand,
    ResetCommand,
    StatusCommand,
)
from bot.commands.moderation import ModerationCommand
from bot.commands.privacy import ForgetMeCommand
from bot.commands.usage import QuotaCommand, UsageCommand
from bot.errors import ConfigError
from bot.i18n import Locale
from bot.journal import JournalledInbox
from bot.logs import adopt_library_loggers, vllm_log_level
from bot.metrics import MeteredGate, Metrics, TimedEngine
from bot.moderation import Gate, WordsAware
from bot.moderation.leak import Canary
from bot.persona import Personas
from bot.pipeline import (
    Accept,
    Boundary,
    BuildPrompt,
    Degrade,
    Generate,
    InputGate,
    PinnedModel,
    Pipeline,
    PromptLimits,
    Record,
    Stage,
)
from bot.pipeline.access import AccessCommands, AccessGate
from bot.pipeline.backlog import Backlog
from bot.pipeline.metered import CountAnswer, CountIntake
from bot.pipeline.quota import CommandQuota, QuotaGate
from bot.pipeline.unseen import Unseen
from bot.quotas import Quotas
from bot.recovery import Recovery
from bot.redelivery import Redelivery
from bot.serving import ModelService, initial_model, warn_if_demo
from bot.store import Store
from bot.store.journal import Journal
from engine.base import Engine
from engine.devices import device_problem
from engine.fallback import FallbackChain
from engine.registry import ModelSpec, Registry
from engine.supervisor import EngineEvent, SupervisionPolicy, Supervisor
from engine.types import ChatMessage, Sampling
from engine.urls import redact_url

if TYPE_CHECKING:
    from engine.remote import RemoteEngine

log = logging.getLogger(__name__)


def sampling_from(settings: Settings) -> Sampling:
    return Sampling(
        settings.temperature, settings.top_p, settings.repetition_penalty, settings.max_reply_tokens
    )


def build_engine(
    settings: Settings, spec: ModelSpec, on_event: EngineEvent | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Supervisor:
    """The in-process vLLM engine for `spec`, supervised (restarted when it dies, unless
    `stopping()`), with the options the settings give; not started."""
    from engine.models import ModelResolver
    from engine.vllm_engine import EngineOptions, VllmEngine

    options = EngineOptions(
        kv_cache_gib=settings.kv_cache_gib,
        max_model_len=settings.max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        vllm_log_level=vllm_log_level(settings.log_level),
        switch_mode=settings.switch_mode,
        sleeping_models=settings.sleeping_models,
        trust_remote_code=settings.trust_remote_code,
    )
    policy = SupervisionPolicy(
        hold_s=settings.engine_hold_s, max_restarts=settings.engine_max_restarts,
        window_s=settings.engine_restart_window_s, stall_s=settings.engine_timeout_s,
    )
    return Supervisor(VllmEngine(spec, ModelResolver(settings.data_dir), options), policy, on_event,
                      stopping=stopping)


def build_remote_engine(settings: Settings, on_event: EngineEvent | None = None) -> RemoteEngine:
    """The engine that streams from HEARTH_ENGINE_URLS; not started. It serves HEARTH_MODEL
    when that is set, else the first model the servers list."""
    from engine.remote import RemoteEngine, RemoteOptions  # the openai client: loaded only when used

    key = settings.engine_api_key
    options = RemoteOptions(
        urls=settings.engine_urls,
        api_key=key.get_secret_value() if key else None,
        model=settings.model if "model" in settings.model_fields_set else None,
        routing=settings.engine_routing,
        attempts=settings.engine_attempts,
        timeout_s=settings.engine_timeout_s,
        health_interval_s=settings.engine_health_interval_s,
        start_wait_s=settings.engine_start_wait_s,
        max_model_len=settings.max_model_len,
        tokenizer=settings.engine_tokenizer,
    )
    return RemoteEngine(options, on_event)


class EngineEvents:
    """Fans the supervisor's state changes out to whoever listens (the runner tells admins)."""

    def __init__(self) -> None:
        self._listeners: list[EngineEvent] = []

    def listen(self, listener: EngineEvent) -> None:
        self._listeners.append(listener)

    def __call__(self, state: str, detail: str) -> None:
        for listener in self._listeners:
            listener(state, detail)


@dataclass(slots=True)
class _Overrides:
    store: Store | None = None
    engine: Engine | None = None
    registry: Registry | None = None
    gate: Gate | None = None
    today: Callable[[], dt.date] = dt.date.today
    sampling: Sampling | None = None
    stages: tuple[Stage, ...] = ()
    monitor: MetricsServer | None = None
    stopping: Callable[[], bool] = lambda: False


class HearthBuilder:
    """Collects the parts to replace, then `build()`s an `App`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._parts = _Overrides()

    def store(self, store: Store) -> Self:
        """Use this store (opened and closed by the caller) instead of HEARTH_DB_PATH."""
        self._parts.store = store
        return self

    def engine(self, engine: Engine) -> Self:
        """Use this engine (started and closed by the caller) instead of building vLLM."""
        self._parts.engine = engine
        return self

    def registry(self, registry: Registry) -> Self:
        self._parts.registry = registry
        return self

    def gate(self, gate: Gate) -> Self:
        """Use this moderation gate (opened by the caller) instead of the layered one."""
        self._parts.gate = gate
        return self

    def today(self, today: Callable[[], dt.date]) -> Self:
        """The clock the persona's `{date}` reads."""
        self._parts.today = today
        return self

    def sampling(self, sampling: Sampling) -> Self:
        """Sample every reply this way instead of as the settings say."""
        self._parts.sampling = sampling
        return self

    def stages(self, *stages: Stage) -> Self:
        """Extra pipeline stages, run after the error boundary and before storing."""
        self._parts.stages = stages
        return self

    def monitor(self, server: MetricsServer) -> Self:
        """Serve metrics and health on this server (started by the caller: `hearth run` starts
        it first, so health answers during start-up) instead of one of the app's own."""
        self._parts.monitor = server
        return self

    def stopping(self, told_to_stop: Callable[[], bool]) -> Self:
        """Whether Hearth was told to stop (`hearth run`: a signal came): an engine lost
        during a reply then is no failure, and the message is answered after the restart."""
        self._parts.stopping = told_to_stop
        return self

    def build(self) -> App:
        return App(self._settings, dataclasses.replace(self._parts))


class App:
    """Hearth, wired: enter it to open the store, the engine and the gate.

    Its parts are read-only: `pipeline` (the `Inbox` adapters call), `commands`,
    `modes`, `models`, `store`, `engine`."""

    def __init__(self, settings: Settings, parts: _Overrides) -> None:
        self.settings = settings
        self._parts = parts
        self._stack = AsyncExitStack()
        self._wired: _Wired | None = None
        self._metrics_url: str | None = None
        self.engine_events = EngineEvents()
        # What /readyz reports (bot.app.health): the monitor's, or one nobody asks.
        self.readiness = parts.monitor.readiness if parts.monitor is not None else Readiness()
        # Set when another process took this one's instance lease (bot.app.lease): it must stop.
        self.lease_lost = asyncio.Event()

    async def __aenter__(self) -> Self:
        try:
            self._wired = await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        wired, self._wired = self._wired, None
        if wired is not None:  # no reply outlives the store (`hearth run` drained with grace already)
            await wired.journalled.close()
            await wired.pipeline.drain(0.0)
        await self._stack.aclose()

    @property
    def store(self) -> Store:
        return self._get().store

    @property
    def engine(self) -> Engine:
        return self._get().engine

    @property
    def pipeline(self) -> Pipeline:
        return self._get().pipeline

    @property
    def commands(self) -> Commands:
        return self._get().commands

    @property
    def modes(self) -> ChannelModes:
        return self._get().modes

    @property
    def models(self) -> ModelService:
        return self._get().models

    @property
    def personas(self) -> Personas:
        return self._get().personas

    @property
    def queue(self) -> Backlog:
        return self._get().queue

    @property
    def metrics(self) -> Metrics:
        return self._get().metrics

    @property
    def quotas(self) -> Quotas:
        return self._get().quotas

    @property
    def metrics_url(self) -> str | None:
        """Where the Prometheus endpoint listens (HEARTH_METRICS_PORT), None when off."""
        return self._metrics_url

    @property
    def moves(self) -> ChannelMover:
        return self._get().moves

    @property
    def recovery(self) -> Recovery:
        return self._get().recovery

    @property
    def redelivery(self) -> Redelivery:
        """Delivers replies a platform would not take, once it takes messages again."""
        return self._get().redelivery

    @property
    def journalled(self) -> JournalledInbox:
        """The inbox for platforms that cannot be asked to deliver again (Discord, the
        terminal): while the store fails, their messages wait in the journal."""
        return self._get().journalled

    def engine_pids(self) -> list[int]:
        """vLLM's engine-core processes, when this app built the engine (else none)."""
        engine = self._get().engine
        return engine.pids() if isinstance(engine, Supervisor | FallbackChain) else []

    def _get(self) -> _Wired:
        if self._wired is None:
            raise RuntimeError("enter the App (async with) before using it")
        return self._wired

    async def _open(self) -> _Wired:
        settings, parts = self.settings, self._parts
        monitor = await self._monitoring()
        registry = parts.registry or Registry.load(settings.models_file)
        store = parts.store if parts.store is not None else await self._open_store()
        self.readiness.watch("store", StoreProbe(store, store.health, settings.instance))
        engine = parts.engine if parts.engine is not None else await self._start_engine(store, registry)
        gate: Gate
        if parts.gate is not None:
            gate = parts.gate
        else:
            gate = await self._stack.enter_async_context(build_gate(settings, store))
        wired = _wire(settings, parts, store, engine, registry, gate)
        self._stack.push_async_callback(wired.quotas.ledger.close)  # the last counts, before the store closes
        await self._stack.enter_async_context(pruning(settings, store))  # retention: now, then hourly
        self.readiness.watch("engine", engine_probe(wired.models.stats))
        if monitor is not None:
            monitor.serve(wired.metrics.registry)
        return wired

    async def _monitoring(self) -> MetricsServer | None:
        """The metrics and health server: the one handed in, else one of the app's own when
        HEARTH_METRICS_PORT is set (started now), else None."""
        server, host, port = self._parts.monitor, self.settings.metrics_host, self.settings.metrics_port
        if server is None and port is not None:
            server = MetricsServer(None, host, port, self.readiness)
            await self._stack.enter_async_context(server)
        if server is not None:
            self._metrics_url = server.url
        return server

    async def _open_store(self) -> Store:
        """The store the settings name, opened (a failure: one line naming the setting), with this
        process's instance lease (a live process holding it: ConfigError, before the model loads)."""
        store = store_for(self.settings)
        await open_store(store, self.settings)
        self._stack.push_async_callback(store.close)
        lease = await self._stack.enter_async_context(holding_lease(store, self.settings.instance))
        self.lease_lost = lease.lost
        return store

    async def _start_engine(self, store: Store, registry: Registry) -> Engine:
        if self.settings.engine_kind == "remote":
            remote = build_remote_engine(self.settings, self.engine_events)
            servers = ", ".join(redact_url(u) for u in self.settings.engine_urls)
            self.readiness.set("engine", False, f"connecting to {servers}")
            log.info("connecting to %s …", servers)
            await remote.start()
            self._stack.push_async_callback(remote.close)
            return remote
        spec = await initial_model(store, registry, self.settings.model)
        if (problem := device_problem(spec)) is not None:  # in a second, not after building 5 GB
            raise ConfigError([f"HEARTH_MODEL: {problem}"])
        warn_if_demo(spec)
        self.readiness.set("engine", False, f"loading {spec.name}")
        fallbacks = [registry.lookup(name) for name in self.settings.fallback_models]
        engine = build_engine(self.settings, spec, self.engine_events, self._parts.stopping)
        chain = FallbackChain(engine, spec, fallbacks, self.engine_events)
        self.engine_events.listen(chain.engine_event)
        log.info("loading model %s …", spec.name)
        await chain.start()
        adopt_library_loggers()  # torch and transformers, imported by the load, log through ours
        self._stack.push_async_callback(chain.close)
        return chain


@dataclass(frozen=True, slots=True)
class _Wired:
    store: Store
    engine: Engine
    pipeline: Pipeline
    commands: Commands
    modes: ChannelModes
    models: ModelService
    personas: Personas
    queue: Backlog
    recovery: Recovery
    moves: ChannelMover
    metrics: Metrics
    quotas: Quotas
    journalled: JournalledInbox
    redelivery: Redelivery


def _wire(
    settings: Settings, parts: _Overrides, store: Store, engine: Engine, registry: Registry, gate: Gate
) -> _Wired:
    locale = Locale(settings.language)
    boundary = ErrorBoundary(locale)
    personas = Personas(store, Canary(store), bot_name=settings.bot_name, template=settings.persona,
                        today=parts.today)
    metrics, admins = Metrics(), Admins(settings.admin_ids)
    metrics.prepare(serving_platforms(settings))  # every series at zero: dashboards show 0, not "No data"
    quotas, sampling = build_quotas(settings, store), parts.sampling or sampling_from(settings)
    quota = QuotaGate(quotas, store, metrics, exemption(settings, admins), reply_tokens=sampling.max_tokens)
    rules = AccessRules(settings.access, settings.access_allow, settings.dm_policy, settings.admin_ids)
    policy = AccessPolicy(rules, store)
    access = AccessGate(policy, store, metrics)
    queue = Backlog(store, metrics, settings.queue_merge_limit, settings.channel_concurrency)
    limits = PromptLimits(settings.history_messages, settings.max_reply_tokens)
    models = ModelService(engine, registry, store, settings.model, store, pinnable=settings.channel_models)
    outer = Boundary(boundary, store)
    journal = Journal(settings.journal)
    redelivery = Redelivery(store, settings.recover_window_s, settings.instance)
    record = Record(store, store, settings.bot_name, journal, owner=settings.instance,
                    on_undelivered=redelivery.wake)
    accept = Accept(store, settings.max_message_chars, settings.instance)
    metered = MeteredGate(gate, metrics)
    # Stored before anything can refuse it; every message judged by the gate on its own
    # before it may wait merged with its author's next one (see Backlog).
    # Counted by the rate limits before access is decided, so a stranger's flood is limited too.
    intake: Sequence[Stage] = (outer, CountIntake(metrics), *parts.stages, accept, quota, access)
    answer: Sequence[Stage] = (
        outer, CountAnswer(metrics), quota.answer, access.answer, Unseen(store),
        InputGate(metered, store, store), queue,
        Degrade(), PinnedModel(models), BuildPrompt(store, personas, engine, limits), quota.reserve,
        Generate(TimedEngine(engine, metrics), metered, sampling, record, parts.stopping),
    )
    pipeline = Pipeline(intake, answer, record, locale, store)
    modes = ChannelModes(store)
    words_changed = gate.words_changed if isinstance(gate, WordsAware) else _nothing
    table = [
        ModelCommand(models).spec(), persona_command(personas, store, engine, limits).spec(),
        ResetCommand(store).spec(),
        StatusCommand(models, queue.depth, sampling=sampling, database=store.health).spec(),
        ModerationCommand(store, words_changed).spec(),
        modes.spec(), UsageCommand(store, quotas).spec(), QuotaCommand(quotas).spec(),
        AccessCommand(policy).spec(), ForgetMeCommand(store).spec(),
    ]
    gates = (AccessCommands(policy, metrics), CommandQuota(quotas, metrics, exemption(settings, admins)))
    commands = Commands(table, admins, boundary, locale, gates)
    metrics.watch(models.stats, queue.depth)
    recovery = Recovery(store, pipeline, settings.recover_window_s, settings.instance)
    moves = ChannelMover(store, words_changed)
    journalled = JournalledInbox(pipeline, journal, store)
    return _Wired(
        store, engine, pipeline, commands, modes, models, personas, queue, recovery, moves, metrics, quotas,
        journalled, redelivery,
    )


def serving_platforms(settings: Settings) -> list[str]:
    """The platforms `hearth run` serves with these settings (see `bot.app.platforms`)."""
    tokens = (("discord", settings.discord_token), ("telegram", settings.telegram_token))
    return [name for name, token in tokens if token is not None] or ["terminal"]


def persona_command(
    personas: Personas, store: Store, engine: Engine, limits: PromptLimits
) -> PersonaCommand:
    """`/persona`, refusing a persona that would take more than half the prompt budget."""

    async def tokens(system: str) -> int:
        return await engine.count_tokens([ChatMessage("system", system)])

    return PersonaCommand(personas, store, tokens, lambda: limits.budget(engine.max_model_len) // 2)


def _nothing() -> None:
    return None
