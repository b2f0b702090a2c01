"""Hearth's settings: one typed class, read from the environment and `.env`.

Nothing else in Hearth reads `os.environ`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.app.entries import admin_entries, allow_entries
from bot.errors import ConfigError
from engine.urls import url_password

ENV_PREFIX = "HEARTH_"
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")
# HEARTH_ variables that are not settings but are expected: read by Hearth's scripts
# (setup.sh, gpu-check.sh, the tests), or made by Kubernetes for a Service named hearth
# (HEARTH_SERVICE_HOST, HEARTH_PORT_9464_TCP…) and by Docker's legacy links.
SCRIPT_VARIABLES = frozenset({
    "HEARTH_EXTRA", "HEARTH_FORCE_GPU", "HEARTH_GPU_CHECK_MODELS", "HEARTH_GPU_CHECK_OFFLINE",
    "HEARTH_GPU_CHECK_QUICK", "HEARTH_TEST_DATABASE_URL", "HEARTH_TEST_PG_DIR", "HEARTH_PORT",
})
DERIVED_PREFIXES = ("HEARTH_SERVICE_", "HEARTH_PORT_", "HEARTH_ENV_", "HEARTH_NAME")
# What a token looks like (never quoted back: a near-miss is still a secret). Telegram:
# BotFather's `123456789:AA…`; Discord: base64url parts joined by dots.
TELEGRAM_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")
DISCORD_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,300}")
# Bot API setWebhook (https://core.telegram.org/bots/api#setwebhook): an HTTPS URL on one of
# these ports, and a secret_token of 1-256 of these characters.
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    """Every knob Hearth has; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    model: str = "demo"
    models_file: Path | None = None
    data_dir: Path = Path("data")
    db_path: Path | None = None
    # postgresql://user:password@host/db: PostgreSQL instead of the SQLite file (a secret: the password).
    database_url: SecretStr | None = None
    instance_name: str = Field(default="hearth", min_length=1, max_length=200)
    admin_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    bot_name: str = Field(default="Hearth", min_length=1, max_length=64)
    persona: str | None = None
    language: Literal["auto", "zh", "en"] = "auto"

    # --- trust boundaries (README: "Security model") ---
    # open: anyone may talk to Hearth; allowlist: only the servers, chats and users listed.
    access: Literal["open", "allowlist"] = "open"
    access_allow: Annotated[frozenset[str], NoDecode] = frozenset()
    # Direct messages under HEARTH_ACCESS=allowlist: open, allowlisted users only, or pairing
    # (allowlisted users, and those an operator paired with /access approve CODE).
    dm_policy: Literal["open", "allowlisted", "pairing"] = "pairing"
    # Operators hear of each kind of event (engine down, back, database failing…) at most once this often.
    notice_interval_s: float = Field(default=600.0, ge=0.0)
    # Models a channel admin may pin a channel to (`/model NAME channel`); empty: any the servers serve.
    channel_models: Annotated[tuple[str, ...], NoDecode] = ()
    # Registry entries with trust_remote_code (transformers runs the repository's own code)
    # load only with this.
    trust_remote_code: bool = False

    # Unset: the model's recommendation (registry, generation_config.json), else 0.7, 0.9, 1.15.
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, ge=1.0, le=2.0)
    max_reply_tokens: int = Field(default=512, ge=1, le=32768)
    max_model_len: int | None = Field(default=None, ge=256)
    kv_cache_gib: float | None = Field(default=None, gt=0.0)
    gpu_memory_utilization: float = Field(default=0.85, gt=0.0, le=1.0)
    history_messages: int = Field(default=200, ge=2)
    max_message_chars: int = Field(default=16000, ge=100)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: one line per record; json: one JSON object per line, for log collectors.
    log_format: Literal["text", "json"] = "text"

    # --- failure and recovery ---
    recover_window_s: float = Field(default=300.0, ge=0.0)
    # Where messages wait while the database fails (Discord, terminal); beside the database by default.
    journal_path: Path | None = None
    engine_hold_s: float = Field(default=120.0, gt=0.0)
    engine_max_restarts: int = Field(default=5, ge=1)
    engine_restart_window_s: float = Field(default=600.0, gt=0.0)
    fallback_models: Annotated[tuple[str, ...], NoDecode] = ()
    switch_mode: Literal["auto", "beside", "reload"] = "auto"
    sleeping_models: int = Field(default=1, ge=0, le=8)
    shutdown_grace_s: float = Field(default=3.0, ge=0.0, le=6.0)
    platform_down_s: float = Field(default=300.0, gt=0.0)

    # --- the engine: vLLM in this process, or remote OpenAI-compatible servers ---
    engine_kind: Literal["inprocess", "remote"] = "inprocess"
    engine_urls: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validate_default=True)
    engine_api_key: SecretStr | None = None
    engine_routing: Literal["affinity", "round-robin"] = "affinity"
    engine_attempts: int = Field(default=3, ge=1, le=10)
    engine_timeout_s: float = Field(default=60.0, gt=0.0)
    engine_health_interval_s: float = Field(default=5.0, gt=0.0)
    engine_start_wait_s: float = Field(default=120.0, ge=0.0)
    engine_tokenizer: Path | None = None

    # --- moderation ---
    moderation_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    guard_model: str | None = None
    guard_fail: Literal["closed", "open"] = "closed"
    guard_gpu_memory_utilization: float = Field(default=0.1, gt=0.0, le=1.0)
    guard_kv_cache_gib: float | None = Field(default=None, gt=0.0)
    guard_max_model_len: int = Field(default=4096, ge=256)

    # --- quotas and fairness (0 turns a limit off) ---
    user_messages_per_minute: int = Field(default=20, ge=0)
    user_burst: int = Field(default=6, ge=1)
    channel_messages_per_minute: int = Field(default=60, ge=0)
    channel_burst: int = Field(default=20, ge=1)
    user_daily_tokens: int = Field(default=200_000, ge=0)
    channel_daily_tokens: int = Field(default=2_000_000, ge=0)
    quota_admins_exempt: bool = True
    queue_merge_limit: int = Field(default=5, ge=1)
    channel_concurrency: int = Field(default=4, ge=1)

    # --- retention (days; 0 keeps forever): see bot.retention ---
    retention_days: int = Field(default=30, ge=0)  # verdicts; usage rows too, never under /usage's 7
    message_retention_days: int = Field(default=0, ge=0)

    # --- metrics ---
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # --- discord ---
    discord_token: SecretStr | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    # Sharding: None = Discord's recommendation; ids empty = every shard (see .env.example).
    discord_shard_count: int | None = Field(default=None, ge=1)
    discord_shard_ids: Annotated[tuple[int, ...], NoDecode] = ()

    # --- telegram ---
    telegram_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    telegram_webhook_secret: SecretStr | None = None

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _check_admin_ids(cls, value: object) -> frozenset[str]:
        return admin_entries(value)  # never quotes an entry: a pasted token would end up in the log

    @field_validator("access_allow", mode="before")
    @classmethod
    def _check_access_allow(cls, value: object) -> frozenset[str]:
        return allow_entries(value)

    @field_validator("channel_models", mode="before")
    @classmethod
    def _split_channel_models(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("discord_shard_ids")
    @classmethod
    def _check_shard_ids(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        if not value or "discord_shard_count" not in info.data:  # a bad count is reported on its own
            return value
        count = info.data["discord_shard_count"]
        if count is None:
            raise ValueError("needs HEARTH_DISCORD_SHARD_COUNT, the same in every process")
        if any(not 0 <= shard < count for shard in value):
            raise ValueError(f"each shard id must be from 0 to {count - 1} (HEARTH_DISCORD_SHARD_COUNT - 1)")
        if len(set(value)) != len(value):
            raise ValueError("a shard id is listed twice")
        return tuple(sorted(value))

    @field_validator("engine_urls", mode="before")
    @classmethod
    def _split_engine_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("engine_urls")
    @classmethod
    def _check_engine_urls(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("engine_kind") == "remote" and not value:
            raise ValueError("HEARTH_ENGINE_KIND=remote needs at least one URL, e.g. http://gpu-a:8000/v1")
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError("each URL must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_engine_credential(self) -> Settings:
        """A URL's user:password@ and HEARTH_ENGINE_API_KEY together: the client sent the URL's
        Basic credentials in place of the key, silently. Refused; the URL is never quoted."""
        key = self.engine_api_key
        if key is not None and key.get_secret_value():
            for position, url in enumerate(self.engine_urls, 1):
                if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
                    raise ValueError(
                        f"HEARTH_ENGINE_URLS: URL {position} carries user:password@ and "
                        "HEARTH_ENGINE_API_KEY is set: use one of them (the URL's credentials would "
                        "replace the key)"
                    )
        return self

    @field_validator("telegram_token")
    @classmethod
    def _check_telegram_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not TELEGRAM_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("not a Telegram bot token: BotFather's look like 123456789:AAH…, digits, a "
                             "colon, then letters, digits, - and _ (no spaces, quotes or 'bot' prefix)")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if not value:  # HEARTH_TELEGRAM_WEBHOOK_URL= means long polling
            return None
        url = urlsplit(value)
        if url.scheme != "https" or not url.hostname:
            raise ValueError("Telegram posts only to an https:// URL with a host name, e.g. "
                             "https://bot.example.org/telegram (Hearth's own server behind it speaks HTTP)")
        try:
            port = url.port
        except ValueError:
            port = -1
        if port is not None and port not in WEBHOOK_PORTS:
            raise ValueError(f"Telegram posts only to ports {', '.join(map(str, sorted(WEBHOOK_PORTS)))}")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():  # unset or empty: a random one each start
            return None
        if not WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("Telegram takes 1-256 letters, digits, '_' and '-' (no spaces or quotes)")
        return value

    @field_validator("discord_token")
    @classmethod
    def _check_discord_token(cls, value: SecretStr | None) -> SecretStr | None:
        token = value.get_secret_value() if value is not None else ""
        if value is not None and token.isdigit():
            raise ValueError("this is a number (the application id?), not the bot token: copy the token "
                             "from the Bot page of the developer portal")
        if value is not None and not DISCORD_TOKEN.fullmatch(token):
            raise ValueError("not a Discord bot token: letters, digits, '.', '-' and '_' only (no 'Bot ' "
                             "prefix, no spaces or quotes); copy it from the Bot page of the developer "
                             "portal")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():  # HEARTH_DATABASE_URL= means SQLite
            return None
        if not value.get_secret_value().startswith(DATABASE_URL_SCHEMES):
            raise ValueError("must start with postgresql:// (SQLite needs none: see HEARTH_DB_PATH)")
        return value

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "hearth.sqlite3"

    @property
    def journal(self) -> Path:
        """HEARTH_JOURNAL_PATH, else beside the SQLite file (or in the data dir for PostgreSQL)."""
        if self.journal_path is not None:
            return self.journal_path
        if self.database_url is not None:
            return self.data_dir / "hearth.journal"
        return self.database.with_name(self.database.name + ".journal")

    @property
    def instance(self) -> str:
        """This process's name among Hearths sharing one database (HEARTH_INSTANCE_NAME):
        it must stay the same across restarts, and differ between processes."""
        return self.instance_name

    def secrets(self) -> list[SecretStr]:
        """Every secret value, so logs can be scrubbed of them: the secret settings and the
        passwords in HEARTH_ENGINE_URLS."""
        passwords = [SecretStr(p) for url in self.engine_urls if (p := url_password(url))]
        return [v for v in self.__dict__.values() if isinstance(v, SecretStr)] + passwords


def _split_commas(value: object) -> object:
    """`a, b,c` → ["a", "b", "c"] for list settings given as one environment variable."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation errors into one clear line per problem; a HEARTH_
    variable that is no setting (in the environment or `.env`) is one too (see `unknown_variables`)."""
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    unknown = unknown_variables(os.environ, Path(str(env_file)) if env_file else None)
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(unknown + [_describe(err) for err in exc.errors()]) from None
    if unknown:
        raise ConfigError(unknown)
    return settings


def unknown_variables(environ: Mapping[str, str], env_file: Path | None) -> list[str]:
    """One problem per HEARTH_ variable of `environ` or `env_file` that is no setting, naming
    the closest setting. A misspelt setting used to be ignored in silence: HEARTH_MODLE ran
    the demo, and HEARTH_ACCES=allowlist would leave the bot open to anyone."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    found = {name: "the environment" for name in environ}
    if env_file is not None and env_file.is_file():
        found |= {name: str(env_file) for name in dotenv_values(env_file) if name not in found}
    problems = []
    for name, where in sorted(found.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or _expected(upper):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"{name} (in {where}): no such setting; {hint}(every setting is in .env.example)")
    return problems


def _expected(name: str) -> bool:
    """A HEARTH_ variable that is no setting but belongs where it is (see SCRIPT_VARIABLES)."""
    return name in SCRIPT_VARIABLES or name.startswith(DERIVED_PREFIXES)


def _describe(err: ErrorDetails) -> str:
    # Never echo the input: it might be a token.
    if not err["loc"]:  # a rule across settings names them itself
        return err["msg"].removeprefix("Value error, ")
    return f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}"
