"""Language detection and the one mapping from errors to user-facing text."""

from __future__ import annotations

import re

import pytest

from bot.errors import ConfigError, HearthError, MessageTooLongError, NotAdminError, StoreUnavailableError
from bot.i18n import TEXTS, detect_language, error_text
from engine.devices import DeviceError, device_problem
from engine.errors import (
    EngineStalledError,
    EngineUnavailableError,
    ModelLoadError,
    PromptTooLongError,
    UnknownModelError,
)
from engine.registry import Registry

CJK = re.compile(r"[\u4e00-\u9fff]")
MAPPED_ERRORS: list[BaseException] = [
    EngineUnavailableError("engine stopped"),
    PromptTooLongError(5000, 4096),
    MessageTooLongError(20000, 16000),
    ModelLoadError("qwen2.5-7b-awq", "out of memory"),
    UnknownModelError("gpt-9", ["demo", "demo-awq"]),
    NotAdminError("/model"),
    EngineStalledError(5.0),
    StoreUnavailableError("store message", "database is locked"),
]
ALL_ERRORS: list[BaseException] = [*MAPPED_ERRORS, ConfigError(["HEARTH_X: bad"]), HearthError("root")]


def test_chinese_text_is_zh() -> None:
    assert detect_language("你好，今天天气怎么样？") == "zh"


def test_english_text_is_en() -> None:
    assert detect_language("Hello, how is the weather today?") == "en"


def test_mixed_text_with_chinese_is_zh() -> None:
    assert detect_language("Can you explain 递归 to me?") == "zh"


def test_text_without_letters_is_en() -> None:
    assert detect_language("123 :) 😀") == "en"


@pytest.mark.parametrize(("text", "setting"), [("Hello there", "zh"), ("你好", "en")])
def test_setting_overrides_the_text(text: str, setting: str) -> None:
    assert detect_language(text, setting) == setting


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: type(e).__name__)
def test_english_error_text_has_no_chinese(error: BaseException) -> None:
    english = error_text(error, "en")
    assert english
    assert not CJK.search(english)


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: type(e).__name__)
def test_chinese_error_text_has_chinese(error: BaseException) -> None:
    assert CJK.search(error_text(error, "zh"))


@pytest.mark.parametrize("error", MAPPED_ERRORS, ids=lambda e: type(e).__name__)
def test_known_errors_get_their_own_text(error: BaseException) -> None:
    assert error_text(error, "en") != TEXTS["internal_error"]["en"]


@pytest.mark.parametrize(
    ("error", "data"),
    [
        (PromptTooLongError(5000, 4096), ["5000", "4096"]),
        (MessageTooLongError(20000, 16000), ["20000", "16000"]),
        (ModelLoadError("qwen2.5-7b-awq", "out of memory"), ["qwen2.5-7b-awq"]),
        (UnknownModelError("gpt-9", ["demo", "demo-awq"]), ["gpt-9", "demo, demo-awq"]),
        (NotAdminError("/model"), ["/model"]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "",
)
def test_error_text_carries_the_error_data(error: BaseException, data: list[str]) -> None:
    for lang in ("en", "zh"):
        assert all(item in error_text(error, lang) for item in data)


def test_model_load_reason_is_kept_from_users() -> None:
    assert "out of memory" not in error_text(ModelLoadError("m", "out of memory"), "en")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_unexpected_error_gives_the_generic_text(lang: str) -> None:
    assert error_text(RuntimeError("boom at 0xdeadbeef"), lang) == TEXTS["internal_error"][lang]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_model_this_machine_cannot_run_says_why_and_what_to_use(lang: str) -> None:
    """The reason is the registry's and the machine's, never a secret: it is shown, as the
    real engine raises it (a ModelLoadError from the resolver's DeviceError)."""
    reason = device_problem(Registry.load().get("qwen2.5-1.5b-awq"), visible=lambda: False,
                            cpu_only=lambda: True, avx512=lambda: False)
    assert reason is not None
    try:
        try:
            raise DeviceError("qwen2.5-1.5b-awq", reason)
        except DeviceError as exc:
            raise ModelLoadError("qwen2.5-1.5b-awq", reason) from exc
    except ModelLoadError as error:
        shown = error_text(error, lang)
    assert "AVX-512" in shown and "qwen2.5-1.5b or smollm2-135m" in shown
    assert shown != error_text(ModelLoadError("m", "out of memory"), lang)
