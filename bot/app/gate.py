"""Building the gate the running bot uses, from settings and the store."""

from __future__ import annotations

from bot.app.settings import Settings
from bot.logs import vllm_log_level
from bot.moderation.gate import GateConfig, LayeredGate, WordSource
from bot.moderation.guard import EngineGuard, GuardLayer
from engine.base import Engine
from engine.registry import Registry


def gate_config(settings: Settings) -> GateConfig:
    return GateConfig(settings.moderation_threshold, settings.guard_fail)


def build_gate(settings: Settings, words: WordSource | None) -> LayeredGate:
    """The layered gate: word lists and classifier always, the guard model when
    HEARTH_GUARD_MODEL is set (loaded on first use, beside the chat model)."""
    guard = None
    if settings.guard_model:
        guard = GuardLayer(EngineGuard(_guard_engine(settings)), settings.guard_fail)
    return LayeredGate(gate_config(settings), words, guard)


def _guard_engine(settings: Settings) -> Engine:
    # vLLM is imported only when the guard starts: engine.vllm_engine imports it lazily.
    from engine.models import ModelResolver
    from engine.vllm_engine import EngineOptions, VllmEngine

    assert settings.guard_model is not None
    spec = Registry.load(settings.models_file).lookup(settings.guard_model)
    options = EngineOptions(
        kv_cache_gib=settings.guard_kv_cache_gib,
        max_model_len=settings.guard_max_model_len,
        gpu_memory_utilization=settings.guard_gpu_memory_utilization,
        vllm_log_level=vllm_log_level(settings.log_level),
        trust_remote_code=settings.trust_remote_code,
    )
    return VllmEngine(spec, ModelResolver(settings.data_dir), options)
