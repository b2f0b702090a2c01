"""The Telegram adapter: `TelegramAdapter(config, inbox, commands, modes)`; `run()` serves until `stop()`."""

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.config import TelegramConfig
from adapters.telegram.connection import check_token
from adapters.telegram.outgoing import TelegramApiError
from adapters.telegram.pacing import Pacing

__all__ = ["Pacing", "TelegramAdapter", "TelegramApiError", "TelegramConfig", "check_token"]
