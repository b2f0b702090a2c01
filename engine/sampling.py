"""Which sampling a reply gets: what the settings fix, else what the model recommends,
else Hearth's defaults.

A model recommends through its registry entry (`sampling = {...}`) and through its
own `generation_config.json` (which vLLM reads: `get_diff_sampling_param()`); the
registry wins where both speak. When a model recommends anything, what it leaves
out takes the neutral value its authors tuned against (temperature 1, top-p 1, no
repetition penalty), as `vllm serve` and transformers do; Hearth's own defaults
apply only to a model that recommends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.types import Sampling

# Each setting Hearth exposes (HEARTH_TEMPERATURE, HEARTH_TOP_P, HEARTH_REPETITION_PENALTY).
HEARTH_DEFAULTS: Mapping[str, float] = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.15}
NEUTRAL: Mapping[str, float] = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}
# What a registry entry or generation_config.json may recommend (vLLM SamplingParams names).
RECOMMENDABLE = (
    "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
)
INTEGERS = frozenset({"top_k"})
FROM_REGISTRY = "registry"
FROM_MODEL = "generation_config.json"
FROM_HEARTH = "Hearth's defaults"


@dataclass(frozen=True, slots=True)
class Recommended:
    """A model's sampling when no setting says otherwise, and where it comes from."""

    values: Mapping[str, float] = field(default_factory=lambda: dict(HEARTH_DEFAULTS))
    origin: str = FROM_HEARTH


def recommended(model: Mapping[str, Any], registry: Mapping[str, float]) -> Recommended:
    """Merge the model's `generation_config.json` values with its registry entry's."""
    from_model = {k: _number(k, model[k]) for k in RECOMMENDABLE if model.get(k) is not None}
    from_registry = {k: _number(k, v) for k, v in registry.items() if k in RECOMMENDABLE}
    if not from_model and not from_registry:
        return Recommended()
    origins = [name for name, part in ((FROM_REGISTRY, from_registry), (FROM_MODEL, from_model)) if part]
    return Recommended({**NEUTRAL, **from_model, **from_registry}, " + ".join(origins))


def explicit(sampling: Sampling) -> dict[str, float]:
    """The values a `Sampling` fixes (None leaves a value to the model)."""
    values = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "repetition_penalty": sampling.repetition_penalty,
    }
    return {k: v for k, v in values.items() if v is not None}


def effective(sampling: Sampling, model: Recommended) -> dict[str, float]:
    """What a reply is sampled with: `sampling`'s fixed values over the model's."""
    return {**model.values, **explicit(sampling)}


def describe(sampling: Sampling | None, values: Mapping[str, float], origin: str) -> str:
    """One line for /status: the effective values and where they come from, e.g.
    `temperature 0.7, top_p 0.8, top_k 20, repetition_penalty 1.05 (generation_config.json)`."""
    fixed = explicit(sampling) if sampling is not None else {}
    merged = {**values, **fixed}
    text = ", ".join(f"{k} {merged[k]:g}" for k in RECOMMENDABLE if k in merged)
    sources = [*(["settings: " + ", ".join(fixed)] if fixed else []), *([origin] if origin else [])]
    return f"{text} ({'; '.join(sources)})" if sources else text


def _number(key: str, value: Any) -> float:
    return int(value) if key in INTEGERS else float(value)
