"""`scripts/setup.sh` refuses HEARTH_EXTRA=gpu (vLLM built for CUDA, several GB) where no
GPU is visible, unless forced. Run with a stand-in `nvidia-smi` first on PATH and
PYTHON=false, so that nothing is ever installed: a run let past the GPU check stops at
the interpreter check instead."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NO_PYTHON = "setup: Hearth needs Python 3.11 or newer"


def setup(tmp_path: Path, *, gpu: bool, **env: str) -> subprocess.CompletedProcess[str]:
    """setup.sh with a `nvidia-smi` that lists a GPU (or fails), and no usable interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n" if gpu else "#!/bin/sh\nexit 9\n")
    smi.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    environ.update(PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON="false", **env)
    return subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], env=environ, capture_output=True,
                          text=True, timeout=60)


def test_gpu_without_a_gpu_is_refused(tmp_path: Path) -> None:
    done = setup(tmp_path, gpu=False, HEARTH_EXTRA="gpu")
    assert done.returncode == 2
    assert "no NVIDIA GPU is visible here" in done.stderr and "HEARTH_FORCE_GPU=1" in done.stderr
    assert NO_PYTHON not in done.stderr, "refused before anything else"


def went_ahead(done: subprocess.CompletedProcess[str]) -> bool:
    """Past the GPU check: stopped at the interpreter (or, where this venv was set up for the
    gpu extra already, done at once)."""
    return "no NVIDIA GPU" not in done.stderr and (NO_PYTHON in done.stderr or done.returncode == 0)


def test_gpu_without_a_gpu_may_be_forced(tmp_path: Path) -> None:
    assert went_ahead(setup(tmp_path, gpu=False, HEARTH_EXTRA="gpu", HEARTH_FORCE_GPU="1"))


def test_gpu_with_a_gpu_goes_ahead(tmp_path: Path) -> None:
    assert went_ahead(setup(tmp_path, gpu=True, HEARTH_EXTRA="gpu"))
