"""The Discord adapter: `DiscordAdapter(core, settings)`."""

from adapters.discord.adapter import DeliveryError, DiscordAdapter

__all__ = ["DeliveryError", "DiscordAdapter"]
