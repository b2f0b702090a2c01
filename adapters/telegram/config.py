"""What the Telegram adapter is configured with: the composition root builds it from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

DEFAULT_BASE_URL = "https://api.telegram.org/bot"


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """The bot token, where the Bot API is, and how updates arrive.

    `base_url` may point at a self-hosted Bot API server. With `webhook_url` set,
    updates arrive by webhook on `webhook_listen:webhook_port` (a fresh secret
    each start when `webhook_secret` is None), else by long polling. `operators`
    are HEARTH_ADMIN_IDS entries (`telegram:123`): admins everywhere, so the
    adapter need not ask Telegram about them. `down_s` is HEARTH_PLATFORM_DOWN_S."""

    token: SecretStr
    base_url: str = DEFAULT_BASE_URL
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: SecretStr | None = None
    operators: frozenset[str] = frozenset()
    bot_name: str = "Hearth"
    down_s: float = 300.0  # Telegram unreachable this long (seconds) ends run() with an error
