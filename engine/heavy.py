"""Model builds and conversions in worker threads: one at a time, imports included.

transformers' first import is not thread-safe: the package replaces itself with a lazy
module at the end of its `__init__`, and each submodule loads on first attribute access, so a
thread importing it (or touching one of its names) while another does can find it half made.
Measured here: three threads importing transformers and its Llama classes at once failed one
time in six (`module 'transformers' has no attribute 'LlamaConfig'`), the kind of failure a
first `HEARTH_MODEL=smollm2-135m hearth run` met ("Could not import module 'LlamaConfig'").
Hearth builds demo and shape models and converts packaged ones in worker threads
(`engine.models`, `engine.packaged`), where their imports of torch and transformers happen:
each such job runs whole under BUILD_LOCK.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BUILD_LOCK = threading.Lock()
HALF_IMPORTED = "Could not import module"  # transformers' words when a lazy name fails to load


def exclusively(job: Callable[[], T]) -> T:
    """`job()` while no other build or conversion of this process runs (blocking)."""
    with BUILD_LOCK:
        return job()


def half_imported(error: BaseException) -> bool:
    """Whether `error` is transformers failing to load a lazy name (a race, worth one retry)."""
    text = str(error)
    lazy_name = HALF_IMPORTED in text or ("transformers" in text and "has no attribute" in text)
    return isinstance(error, ModuleNotFoundError | AttributeError) and lazy_name
