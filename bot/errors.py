"""The core's exceptions: one root, shallow, errors that carry their data.

They, and the engine's (`engine.errors`), become user-facing text in exactly one
place: `bot.boundary.ErrorBoundary`, through `bot.i18n.error_text`.
"""

from __future__ import annotations


class HearthError(Exception):
    """Root of every error the core raises on purpose."""


class ConfigError(HearthError):
    """Settings could not be loaded; `problems` holds one line per bad value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class NotAdminError(HearthError):
    """`action` needs more rights than the author has: a channel admin's, or with
    `operators` set, an operator's (HEARTH_ADMIN_IDS: global state)."""

    def __init__(self, action: str, *, operators: bool = False) -> None:
        super().__init__(f"{action} is for {'operators' if operators else 'admins'} only")
        self.action = action
        self.operators = operators


class MessageTooLongError(HearthError):
    """A message of `chars` characters is over the `limit` (HEARTH_MAX_MESSAGE_CHARS)."""

    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(f"message has {chars} characters, the limit is {limit}")
        self.chars = chars
        self.limit = limit


class PersonaTooLongError(HearthError):
    """An admin's persona is over a limit: `size` and `limit` in `unit` ("characters" or
    "tokens": a persona may take at most half of the model's prompt budget)."""

    def __init__(self, size: int, limit: int, unit: str) -> None:
        super().__init__(f"persona has {size} {unit}, the limit is {limit}")
        self.size = size
        self.limit = limit
        self.unit = unit


class DeliveryError(HearthError):
    """A platform did not take a message: rejected it (4xx) or kept failing (5xx, network).

    `status` is the HTTP status (0 for a dropped connection), `reason` the platform's word."""

    def __init__(self, platform: str, status: int, reason: str) -> None:
        super().__init__(f"{platform} did not take the message: HTTP {status}: {reason}")
        self.platform = platform
        self.status = status
        self.reason = reason

    @property
    def transient(self) -> bool:
        """Whether the platform may take it later: a dropped connection (status 0), a 429
        still refused after the waits, or a server error (5xx). A 4xx is final."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class PlatformAuthError(HearthError):
    """A platform rejected the bot's token (at start-up or while running): `reason` says how."""

    def __init__(self, platform: str, reason: str) -> None:
        super().__init__(f"{platform} rejected the bot token: {reason}")
        self.platform = platform
        self.reason = reason


class PlatformDownError(HearthError):
    """A platform could not be reached for `seconds` (HEARTH_PLATFORM_DOWN_S)."""

    def __init__(self, platform: str, seconds: float, reason: str) -> None:
        super().__init__(f"{platform} unreachable for {seconds:.0f} s: {reason}")
        self.platform = platform
        self.seconds = seconds
        self.reason = reason


class StoreUnavailableError(HearthError):
    """The store could not read or commit (disk full, locked past the busy timeout, I/O
    error, a corrupt page, the database server unreachable): nothing of `operation` was
    committed, and the same call may succeed once the store recovers.

    `reason` is the driver's word (never a password). Intake does not acknowledge a
    message to its platform while this is raised (see `bot.ports.Inbox.submit`)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"the store could not {operation}: {reason}")
        self.operation = operation
        self.reason = reason
