"""The Discord adapter: `DiscordAdapter(DiscordConfig(token), inbox, commands, modes)`."""

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.client import DiscordConfig, check_token

__all__ = ["DiscordAdapter", "DiscordConfig", "check_token"]
