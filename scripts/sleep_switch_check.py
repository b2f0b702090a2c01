"""Switch demo -> demo-awq -> demo -> demo-awq -> demo on the real engine, timing each
switch and a reply after it. On a GPU the model switched away from sleeps (vLLM's sleep
mode), so every switch after the first is a wake-up; on CPU each one is a cold load.

    python scripts/sleep_switch_check.py DATA_DIR [beside|reload]

DATA_DIR holds models/demo and models/demo-awq (`hearth demo-model`); run from the
repository root. `scripts/gpu-check.sh` runs it.
"""
import asyncio
import sys
import time
from pathlib import Path


async def main(data: Path, mode: str) -> None:
    from engine.models import ModelResolver
    from engine.registry import Registry
    from engine.types import ChatMessage, Sampling
    from engine.vllm_engine import EngineOptions, VllmEngine

    reg = Registry.load()
    options = EngineOptions(gpu_memory_utilization=0.3, switch_mode=mode, sleeping_models=1)
    eng = VllmEngine(reg.get("demo"), ModelResolver(data), options)

    async def reply() -> str:
        t = time.monotonic()
        n = 0
        async for _ in eng.stream([ChatMessage("user", "hello")], Sampling(max_tokens=16, temperature=0.0)):
            n += 1
        return f"{n} chunks in {time.monotonic() - t:.2f} s"

    t = time.monotonic()
    await eng.start()
    print(f"start demo {time.monotonic() - t:.1f} s; reply {await reply()}", flush=True)
    for name in ("demo-awq", "demo", "demo-awq", "demo"):
        t = time.monotonic()
        await eng.switch(reg.get(name))
        took = time.monotonic() - t
        print(f"[{mode}] switch to {name}: {took:.1f} s; serving {eng.spec.name};"
              f" asleep {eng.stats().asleep}; reply {await reply()}", flush=True)
    t = time.monotonic()
    await eng.close()
    print(f"close {time.monotonic() - t:.1f} s", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "beside"))
