"""The one place an exception becomes words for a user, for messages and commands alike."""

from __future__ import annotations

import logging

from bot import i18n
from bot.errors import HearthError
from bot.messages import IncomingMessage
from engine.errors import EngineError

log = logging.getLogger(__name__)


class ErrorBoundary:
    """Logs a failure once, at the right level, and words it in the user's language.

    Expected failures (`HearthError`, `EngineError`: a prompt too long, an engine
    down, a refusal) are logged as one line; anything else with its traceback,
    and the user only hears that something went wrong."""

    def __init__(self, locale: i18n.Locale) -> None:
        self._locale = locale

    def reply_for(
        self, exc: BaseException, msg: IncomingMessage, what: str = "message", lang: str | None = None
    ) -> str:
        """Log `exc` (raised while handling `msg`) and return the reply the user sees, in
        `lang` (the language the caller worked out for `msg`'s author), else `msg`'s own."""
        if isinstance(exc, HearthError | EngineError):
            log.warning("%s %s in %s: %s", what, msg.message_id, msg.key, exc)
        else:
            log.error("%s %s in %s failed", what, msg.message_id, msg.key, exc_info=exc)
        return i18n.error_text(exc, lang or self._locale.of(msg.text))
