"""`.env.example` documents every setting, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

from bot.app.settings import ENV_PREFIX, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def documented() -> set[str]:
    return set(re.findall(rf"^#?\s*({ENV_PREFIX}[A-Z_]+)=", EXAMPLE.read_text("utf-8"), re.MULTILINE))


def test_every_setting_is_documented() -> None:
    expected = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert documented() == expected


def test_the_example_itself_is_valid() -> None:
    settings = load_settings(_env_file=str(EXAMPLE))
    assert settings.model == "demo"
