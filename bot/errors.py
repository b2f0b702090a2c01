"""Hearth's exception tree: one root, shallow, errors carry their data.

They become user-facing text in exactly one place: `bot.i18n.error_text`.
"""

from __future__ import annotations


class HearthError(Exception):
    """Root of every error Hearth raises on purpose."""


class ConfigError(HearthError):
    """Settings could not be loaded; `problems` holds one line per bad value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UnknownModelError(HearthError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; known: {', '.join(known)}")
        self.name = name
        self.known = known


class EngineUnavailableError(HearthError):
    """The engine is not running, is switching, or died."""


class ModelLoadError(HearthError):
    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model {model!r} failed to load: {reason}")
        self.model = model
        self.reason = reason


class PromptTooLongError(HearthError):
    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"prompt needs {tokens} tokens, the model allows {limit}")
        self.tokens = tokens
        self.limit = limit


class NotAdminError(HearthError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} is for admins only")
        self.action = action


class MessageTooLongError(HearthError):
    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(f"message has {chars} characters, the limit is {limit}")
        self.chars = chars
        self.limit = limit
