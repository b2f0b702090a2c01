"""Operator notices, debounced: strangers' messages must not make Hearth flood its operators.

A remote server answering 401 to every request made the engine flap between down and
back, and each "back" was a direct message to every operator: 20 in 32 s for 10
messages. Now each kind of notice goes out at most once per HEARTH_NOTICE_INTERVAL_S,
and a "back" notice only when its "down" notice went out (nobody needs to hear that
something they never heard was down is back).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

# A "back" kind, and the "down" kinds it answers.
RECOVERIES: Mapping[str, frozenset[str]] = {
    "ready": frozenset({"restarting", "stalled", "failed", "unavailable"}),
    "chosen": frozenset({"fallback"}),
    "store-ok": frozenset({"store-failing"}),
}


class Debounce:
    """Decides which notices go out: one per kind per `interval_s` seconds."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._outstanding: set[str] = set()  # "down" kinds told and not yet answered by a "back"

    def due(self, kind: str) -> bool:
        """Whether a notice of `kind` goes out now (then it counts as sent)."""
        answers = RECOVERIES.get(kind)
        if answers is not None and not answers & self._outstanding:
            return False
        now, last = self._clock(), self._last.get(kind)
        if last is not None and now - last < self._interval_s:
            return False
        self._last[kind] = now
        if answers is not None:
            self._outstanding -= answers
        else:
            self._outstanding.add(kind)
        return True
