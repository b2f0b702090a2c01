"""The engine's exceptions: one root, shallow, each carrying its data.

The core turns them into user-facing text (`bot.i18n.error_text`); the engine
never words anything for users.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine package raises on purpose."""


class RegistryError(EngineError):
    """The model registry could not be read; `problems` holds one line per bad entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UnknownModelError(EngineError):
    """`name` is neither a registry entry nor a Hugging Face id or local directory."""

    def __init__(self, name: str, known: list[str], why: str = "") -> None:
        super().__init__(f"unknown model {name!r}{f' ({why})' if why else ''}; known: {', '.join(known)}")
        self.name = name
        self.known = known


class EngineUnavailableError(EngineError):
    """The engine is not running, is switching, or died."""


class EngineStalledError(EngineUnavailableError):
    """The engine had replies in flight and produced nothing for `seconds` seconds (its
    engine core wedged or stopped, though still running); it is being restarted."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the engine made no progress for {seconds:.0f} s")
        self.seconds = seconds


class EngineOutOfMemoryError(EngineUnavailableError):
    """A request failed for lack of memory (GPU memory, or a KV cache too small for it);
    the same request with a shorter prompt and reply may succeed."""


class ModelLoadError(EngineError):
    """`model` could not be started; `reason` is the first line of the cause."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model {model!r} failed to load: {reason}")
        self.model = model
        self.reason = reason


class PromptTooLongError(EngineError):
    """A prompt of `tokens` tokens does not fit the `limit` the model allows."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"prompt needs {tokens} tokens, the model allows {limit}")
        self.tokens = tokens
        self.limit = limit
