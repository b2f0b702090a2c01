"""engine.sampling: the settings' values, else the model's recommendation, else Hearth's."""

from __future__ import annotations

from engine.sampling import FROM_HEARTH, HEARTH_DEFAULTS, describe, effective, recommended
from engine.types import Sampling

QWEN_GENERATION_CONFIG = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05,
                          "max_tokens": 2048}


def test_a_model_that_recommends_nothing_gets_hearths_defaults() -> None:
    model = recommended({}, {})
    assert model.values == HEARTH_DEFAULTS and model.origin == FROM_HEARTH


def test_generation_config_values_are_taken_and_max_tokens_is_not() -> None:
    model = recommended(QWEN_GENERATION_CONFIG, {})
    assert model.values == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    assert model.origin == "generation_config.json"


def test_what_a_model_leaves_out_is_neutral_not_hearths_default() -> None:
    model = recommended({"temperature": 0.6, "top_p": 0.9}, {})
    assert model.values["repetition_penalty"] == 1.0


def test_the_registry_wins_over_generation_config() -> None:
    model = recommended(QWEN_GENERATION_CONFIG, {"temperature": 0.2})
    assert model.values["temperature"] == 0.2 and model.values["top_k"] == 20
    assert model.origin == "registry + generation_config.json"


def test_top_k_stays_an_integer() -> None:
    assert isinstance(recommended({"top_k": 20.0}, {}).values["top_k"], int)


def test_settings_override_only_what_they_set() -> None:
    values = effective(Sampling(temperature=0.0), recommended(QWEN_GENERATION_CONFIG, {}))
    assert values["temperature"] == 0.0 and values["top_p"] == 0.8


def test_status_line_names_the_values_and_where_they_come_from() -> None:
    line = describe(Sampling(temperature=0.3), {"temperature": 0.7, "top_p": 0.8}, "generation_config.json")
    assert line == "temperature 0.3, top_p 0.8 (settings: temperature; generation_config.json)"


def test_status_line_is_empty_when_nobody_says() -> None:
    assert describe(Sampling(), {}, "") == ""
