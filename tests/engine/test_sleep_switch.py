"""Switching with vLLM's sleep mode, on a stand-in for `AsyncLLM`.

vLLM has sleep mode only on GPUs (on this CPU `enable_sleep_mode=True` refuses to
start), so the switch logic around it is tested here with an object that records
`sleep`/`wake_up`/`shutdown` as `AsyncLLM` would be called; the real calls ran on an
H200 (README, "On a GPU"). On CPU the real engine never sleeps: the real-engine tests
in test_vllm_engine.py switch with sleep mode unavailable.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.errors import ModelLoadError
from engine.registry import ModelSpec, Registry
from engine.vllm_engine import EngineOptions, VllmEngine, _Loaded


class StandInLLM:
    """What VllmEngine uses of `AsyncLLM`, recording the sleep-mode calls."""

    def __init__(self, name: str, *, sleepable: bool, wake_error: str = "") -> None:
        self.name = name
        self.model_config = SimpleNamespace(
            enable_sleep_mode=sleepable, quantization=None, get_diff_sampling_param=dict,
        )
        self.errored = False
        self.calls: list[str] = []
        self.wake_error = wake_error

    def get_tokenizer(self) -> None:
        return None

    async def sleep(self, level: int) -> None:
        self.calls.append(f"sleep{level}")

    async def wake_up(self) -> None:
        self.calls.append("wake")
        if self.wake_error:
            raise RuntimeError(self.wake_error)

    def shutdown(self, timeout: float | None = None) -> None:
        self.calls.append("shutdown")


class Harness:
    """A VllmEngine whose `_build` makes stand-ins, counting builds per model."""

    def __init__(self, options: EngineOptions, *, sleepable: bool = True, wake_error: str = "") -> None:
        self.registry = Registry.load()
        self.built: list[str] = []
        self.llms: list[StandInLLM] = []
        self.engine = VllmEngine(self.spec("demo"), lambda spec: Path("."), options)
        self.sleepable, self.wake_error = sleepable, wake_error
        self.fail_builds: set[str] = set()

        async def build(spec: ModelSpec) -> _Loaded:
            self.built.append(spec.name)
            if spec.name in self.fail_builds:
                raise ModelLoadError(spec.name, "CUDA out of memory")
            llm = StandInLLM(spec.name, sleepable=self.sleepable, wake_error=self.wake_error)
            self.llms.append(llm)
            return _Loaded(spec, llm, 2048, [])

        self.engine._build = build  # type: ignore[method-assign]

    def spec(self, name: str) -> ModelSpec:
        return self.registry.get(name)

    def llm(self, name: str, index: int = 0) -> StandInLLM:
        return [llm for llm in self.llms if llm.name == name][index]


@pytest.fixture(params=["reload", "beside"])
def mode(request: Any) -> str:
    return str(request.param)


async def test_switching_back_wakes_the_sleeping_model_instead_of_loading_it(mode: str) -> None:
    h = Harness(EngineOptions(switch_mode=mode, sleeping_models=1))
    await h.engine.start()
    await h.engine.switch(h.spec("demo-awq"))
    assert h.llm("demo").calls == ["sleep1"]
    assert h.engine.stats().asleep == ("demo",)

    await h.engine.switch(h.spec("demo"))

    assert h.built == ["demo", "demo-awq"]  # demo was never loaded a second time
    assert h.llm("demo").calls == ["sleep1", "wake"]
    assert h.llm("demo-awq").calls == ["sleep1"]
    assert h.engine.spec.name == "demo" and h.engine.stats().state == "ready"
    assert h.engine.stats().asleep == ("demo-awq",)
    await h.engine.close()
    assert h.llm("demo-awq").calls == ["sleep1", "shutdown"]  # close ends the sleepers too
    assert h.llm("demo").calls[-1] == "shutdown"


async def test_past_the_limit_the_longest_asleep_is_shut_down() -> None:
    h = Harness(EngineOptions(switch_mode="reload", sleeping_models=1))
    await h.engine.start()
    await h.engine.switch(h.spec("demo-awq"))
    await h.engine.switch(h.spec("qwen2.5-0.5b"))
    assert h.llm("demo").calls == ["sleep1", "shutdown"]
    assert h.engine.stats().asleep == ("demo-awq",)
    await h.engine.switch(h.spec("demo"))  # no longer asleep: loaded again
    assert h.built == ["demo", "demo-awq", "qwen2.5-0.5b", "demo"]
    await h.engine.close()


@pytest.mark.parametrize("sleepable, keep", [(False, 1), (True, 0)])
async def test_without_sleep_mode_the_old_model_is_shut_down(sleepable: bool, keep: int) -> None:
    h = Harness(EngineOptions(switch_mode="reload", sleeping_models=keep), sleepable=sleepable)
    await h.engine.start()
    await h.engine.switch(h.spec("demo-awq"))
    await h.engine.switch(h.spec("demo"))
    assert h.llm("demo", 0).calls == ["shutdown"]
    assert h.built == ["demo", "demo-awq", "demo"]
    assert h.engine.stats().asleep == ()
    await h.engine.close()


async def test_a_model_that_does_not_wake_is_loaded_afresh() -> None:
    h = Harness(EngineOptions(switch_mode="reload", sleeping_models=1))
    await h.engine.start()
    await h.engine.switch(h.spec("demo-awq"))
    h.llm("demo").wake_error = "engine core died while asleep"

    await h.engine.switch(h.spec("demo"))

    assert h.llm("demo", 0).calls == ["sleep1", "wake", "shutdown"]
    assert h.built == ["demo", "demo-awq", "demo"]
    assert h.engine.spec.name == "demo" and h.engine.alive()
    assert h.engine.stats().asleep == ("demo-awq",)
    await h.engine.close()


async def test_a_model_that_neither_wakes_nor_loads_leaves_the_current_one_serving() -> None:
    h = Harness(EngineOptions(switch_mode="reload", sleeping_models=1))
    await h.engine.start()
    await h.engine.switch(h.spec("demo-awq"))
    h.llm("demo").wake_error = "CUDA out of memory"
    h.fail_builds.add("demo")

    with pytest.raises(ModelLoadError, match="CUDA out of memory"):
        await h.engine.switch(h.spec("demo"))

    assert h.llm("demo").calls == ["sleep1", "wake", "shutdown"]
    # put to sleep for each attempt and woken back after each
    assert h.llm("demo-awq").calls == ["sleep1", "wake", "sleep1", "wake"]
    assert h.built == ["demo", "demo-awq", "demo"]
    assert h.engine.spec.name == "demo-awq" and h.engine.alive() and h.engine.stats().state == "ready"
    assert h.engine.stats().asleep == ()
    await h.engine.close()


async def test_a_dead_model_is_shut_down_not_put_to_sleep() -> None:
    h = Harness(EngineOptions(switch_mode="reload", sleeping_models=1))
    await h.engine.start()
    h.llm("demo").errored = True
    await h.engine.switch(h.spec("demo-awq"))
    assert h.llm("demo").calls == ["shutdown"]
    assert h.engine.stats().asleep == ()
    await h.engine.close()
