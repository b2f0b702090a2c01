"""The Telegram adapter: `TelegramAdapter(core, settings)`; `run()` serves until `stop()`."""

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.outgoing import TelegramApiError
from adapters.telegram.pacing import Pacing

__all__ = ["Pacing", "TelegramAdapter", "TelegramApiError"]
