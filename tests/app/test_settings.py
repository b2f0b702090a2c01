"""Typed settings: defaults, the environment, `.env`, and one clear line per bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app.settings import ENV_PREFIX, load_settings
from bot.errors import ConfigError
from engine.sampling import HEARTH_DEFAULTS

REPO = Path(__file__).resolve().parent.parent
SECRET_LIKE = "MTIzNDU2Nzg5.GhXyZw.s3cr3t-t0ken-value"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own HEARTH_ variables out of these tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def problems_for(**overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **overrides)
    return caught.value.problems


def test_default_model_is_demo() -> None:
    assert load_settings(_env_file=None).model == "demo"


def test_sampling_is_left_to_the_model_unless_set() -> None:
    settings = load_settings(_env_file=None)
    assert (settings.temperature, settings.top_p, settings.repetition_penalty) == (None, None, None)


def test_hearths_own_defaults_are_in_the_reference_range() -> None:
    """What a model that recommends nothing gets (engine.sampling)."""
    assert HEARTH_DEFAULTS["temperature"] == 0.7 and HEARTH_DEFAULTS["top_p"] == 0.9
    assert 1.1 <= HEARTH_DEFAULTS["repetition_penalty"] <= 1.2


def test_default_language_is_auto() -> None:
    assert load_settings(_env_file=None).language == "auto"


def test_default_has_no_admins() -> None:
    assert load_settings(_env_file=None).admin_ids == frozenset()


def test_environment_sets_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_TEMPERATURE", "0.2")
    assert load_settings(_env_file=None).temperature == 0.2


def test_admin_ids_parse_into_a_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ADMIN_IDS", "discord:123, telegram:456")
    assert load_settings(_env_file=None).admin_ids == {"discord:123", "telegram:456"}


def test_an_id_written_with_leading_zeros_names_the_same_person(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ADMIN_IDS", "telegram:0012, discord:0123456789012345678")
    monkeypatch.setenv("HEARTH_ACCESS_ALLOW", "telegram:chat:-0001001, telegram:user:007")
    settings = load_settings(_env_file=None)
    assert settings.admin_ids == {"telegram:12", "discord:123456789012345678"}
    assert settings.access_allow == {"telegram:chat:-1001", "telegram:user:7"}


def test_admin_ids_ignore_empty_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ADMIN_IDS", "discord:123,, ")
    assert load_settings(_env_file=None).admin_ids == {"discord:123"}


@pytest.mark.parametrize("value", [
    "telegram: 777", "telegram:@owner", "discord:123;telegram:456", "telegram:", "irc:123", "777",
    "discord:12345678901234567890123",
])
def test_an_admin_id_that_could_never_match_stops_start_up_naming_its_position(value: str) -> None:
    [problem] = problems_for(admin_ids=f"telegram:1,,{value}")

    assert problem.startswith("HEARTH_ADMIN_IDS: ") and "entry 3 is not platform:id" in problem
    assert value.strip() not in problem.split("e.g.")[0], "the entry itself is never quoted"


def test_url_credentials_and_an_api_key_together_stop_start_up_without_quoting_either() -> None:
    [problem] = problems_for(engine_kind="remote", engine_api_key="sk-secret-key",
                             engine_urls="http://a:8000/v1,http://user:hunter2@b:8000/v1")

    assert problem.startswith("HEARTH_ENGINE_URLS: URL 2 carries user:password@")
    assert "hunter2" not in problem and "sk-secret-key" not in problem


def test_url_passwords_are_secrets_the_log_filter_scrubs() -> None:
    settings = load_settings(_env_file=None, engine_urls="http://user:hunter2@b:8000/v1")

    assert "hunter2" in [s.get_secret_value() for s in settings.secrets()]


def test_access_allow_entries_are_checked_like_admin_ids() -> None:
    allowed = load_settings(_env_file=None, access_allow="discord:server:1234, telegram:chat:-1001")
    assert allowed.access_allow == {"discord:server:1234", "telegram:chat:-1001"}
    [problem] = problems_for(access_allow="telegram:chat:-1001,telegram:server:1")
    assert problem.startswith("HEARTH_ACCESS_ALLOW: ") and "entry 2 is not platform:kind:id" in problem


def test_several_bad_values_give_one_problem_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ADMIN_IDS", "irc:nobody")
    monkeypatch.setenv("HEARTH_TEMPERATURE", "hot")
    monkeypatch.setenv("HEARTH_LANGUAGE", "fr")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    named = sorted(problem.split(":")[0] for problem in caught.value.problems)
    assert named == ["HEARTH_ADMIN_IDS", "HEARTH_LANGUAGE", "HEARTH_TEMPERATURE"]


def test_two_bad_admin_entries_give_one_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ADMIN_IDS", "irc:a, matrix:b")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert len(caught.value.problems) == 1


def test_out_of_range_value_names_its_variable() -> None:
    assert problems_for(top_p=1.5)[0].startswith("HEARTH_TOP_P:")


def test_config_error_message_joins_the_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, temperature="hot", language="fr")
    assert str(caught.value) == "; ".join(caught.value.problems)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("temperature", SECRET_LIKE), ("language", SECRET_LIKE), ("max_model_len", SECRET_LIKE)],
)
def test_problem_does_not_echo_the_value(setting: str, value: str) -> None:
    assert all(value not in problem for problem in problems_for(**{setting: value}))


@pytest.mark.parametrize("value", ["discord:", f"discord{SECRET_LIKE}"])
def test_bad_admin_entry_is_not_echoed(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HEARTH_ADMIN_IDS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert all(value not in problem for problem in caught.value.problems)


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HEARTH_MODEL=qwen2.5-0.5b\nHEARTH_TEMPERATURE=0.3\n", "utf-8")
    settings = load_settings(_env_file=env_file)
    assert (settings.model, settings.temperature) == ("qwen2.5-0.5b", 0.3)


def test_environment_overrides_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HEARTH_MODEL=qwen2.5-0.5b\n", "utf-8")
    monkeypatch.setenv("HEARTH_MODEL", "demo-awq")
    assert load_settings(_env_file=env_file).model == "demo-awq"


def test_example_env_file_loads() -> None:
    assert load_settings(_env_file=REPO / ".env.example").model == "demo"


def test_database_defaults_into_the_data_dir(tmp_path: Path) -> None:
    assert load_settings(_env_file=None, data_dir=tmp_path).database == tmp_path / "hearth.sqlite3"


def test_db_path_overrides_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_DB_PATH", str(tmp_path / "elsewhere.db"))
    assert load_settings(_env_file=None, data_dir=tmp_path / "data").database == tmp_path / "elsewhere.db"


def test_settings_are_frozen() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ValueError):
        settings.model = "other"  # type: ignore[misc]


def run_cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "models"],
        cwd=tmp_path,  # no .env there
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_bad_setting_exits_with_code_2(tmp_path: Path) -> None:
    assert run_cli(tmp_path, HEARTH_TEMPERATURE="hot").returncode == 2


def test_cli_bad_setting_prints_one_line_without_traceback(tmp_path: Path) -> None:
    stderr = run_cli(tmp_path, HEARTH_TEMPERATURE="hot").stderr
    assert stderr.splitlines() == [stderr.strip()]
    assert stderr.startswith("hearth: bad setting HEARTH_TEMPERATURE")
    assert "Traceback" not in stderr
