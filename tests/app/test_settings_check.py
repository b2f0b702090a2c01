"""No silent misconfiguration: a HEARTH_ variable that is no setting stops start-up naming
the closest one; a token that cannot be one is refused without being quoted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.app.settings import ENV_PREFIX, load_settings, unknown_variables
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def problems_for(env_file: Path | None = None, **overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env_file, **overrides)
    return caught.value.problems


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_MODLE", "qwen2.5-1.5b")
    assert problems_for() == [
        "HEARTH_MODLE (in the environment): no such setting; did you mean HEARTH_MODEL? "
        "(every setting is in .env.example)"]


def test_a_misspelt_variable_in_dotenv_is_named_with_its_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HEARTH_ACCES=allowlist\nHEARTH_MODEL=demo\n", "utf-8")
    [problem] = problems_for(env_file)
    assert problem.startswith(f"HEARTH_ACCES (in {env_file}): no such setting; did you mean HEARTH_ACCESS?")


def test_a_variable_like_no_setting_gets_no_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ZZZZZZZZ", "1")
    assert problems_for() == ["HEARTH_ZZZZZZZZ (in the environment): no such setting; "
                              "(every setting is in .env.example)"]


def test_it_is_reported_beside_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_MODLE", "x")
    monkeypatch.setenv("HEARTH_TEMPERATURE", "9")
    problems = problems_for()
    assert len(problems) == 2 and problems[0].startswith("HEARTH_MODLE")


def test_scripts_and_kubernetes_variables_are_expected() -> None:
    environ = {"HEARTH_EXTRA": "cpu", "HEARTH_FORCE_GPU": "1", "HEARTH_TEST_DATABASE_URL": "x",
               "HEARTH_SERVICE_HOST": "10.0.0.1", "HEARTH_SERVICE_PORT_METRICS": "9464",
               "HEARTH_PORT": "tcp://10.0.0.1:9464", "HEARTH_PORT_9464_TCP_ADDR": "10.0.0.1",
               "PATH": "/bin", "hearth_model": "demo"}
    assert unknown_variables(environ, None) == []


def test_settings_are_case_insensitive_like_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("hearth_max_reply_tokens", "64")
    assert load_settings(_env_file=None).max_reply_tokens == 64


# Tokens: checked before anything connects or loads, never quoted.


@pytest.mark.parametrize("token", ["bot123456:AAH-token", "987654", "123456:AAH token", "'123456:AAH'"])
def test_a_malformed_telegram_token_is_refused(token: str) -> None:
    [problem] = problems_for(telegram_token=token)
    assert problem.startswith("HEARTH_TELEGRAM_TOKEN:") and "not a Telegram bot token" in problem
    assert token not in problem


@pytest.mark.parametrize("token", ["Bot MTIzNDU2Nzg5.GhXyZw.s3cr3t", "MTIz NDU2", "\"MTIzNDU2.Gh.x\""])
def test_a_malformed_discord_token_is_refused(token: str) -> None:
    [problem] = problems_for(discord_token=token)
    assert problem.startswith("HEARTH_DISCORD_TOKEN:") and "not a Discord bot token" in problem
    assert token not in problem


def test_an_application_id_is_not_a_discord_token() -> None:
    [problem] = problems_for(discord_token="1234567890123456789")
    assert "application id" in problem


def test_well_formed_tokens_pass() -> None:
    settings = load_settings(_env_file=None, telegram_token="123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                             discord_token="MTIzNDU2Nzg5MDEyMzQ1Njc4.GhXyZw.s3cr3t-t0ken_value")
    assert settings.telegram_token is not None and settings.discord_token is not None


@pytest.mark.parametrize("url", ["http://example.org/tg", "https:///tg", "bot.example.org/tg",
                                 "https://bot.example.org:9000/tg"])
def test_a_webhook_url_telegram_would_refuse_stops_start_up(url: str) -> None:
    [problem] = problems_for(telegram_webhook_url=url)
    assert problem.startswith("HEARTH_TELEGRAM_WEBHOOK_URL:") and "Telegram posts only to" in problem


@pytest.mark.parametrize("secret", ["bad secret!", "x" * 257, "'quoted'"])
def test_a_webhook_secret_telegram_would_refuse_stops_start_up_unquoted(secret: str) -> None:
    [problem] = problems_for(telegram_webhook_secret=secret)
    assert problem.startswith("HEARTH_TELEGRAM_WEBHOOK_SECRET:") and secret not in problem


def test_a_webhook_telegram_takes_passes() -> None:
    settings = load_settings(_env_file=None, telegram_webhook_url="https://bot.example.org:8443/telegram",
                             telegram_webhook_secret="s3cret_-token")
    assert settings.telegram_webhook_url == "https://bot.example.org:8443/telegram"
    unset = load_settings(_env_file=None, telegram_webhook_url="", telegram_webhook_secret="")
    assert (unset.telegram_webhook_url, unset.telegram_webhook_secret) == (None, None)
