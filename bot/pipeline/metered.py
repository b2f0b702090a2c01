"""Counting what passes: one stage inside the error boundary of each chain."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.errors import DeliveryError, MessageTooLongError
from bot.metrics import Metrics
from bot.pipeline.turn import Handler, Turn


class CountIntake:
    """Intake: messages received, and those refused there (too long, or failing)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        platform = turn.msg.platform
        self._metrics.labelled(self._metrics.received, platform).inc()
        try:
            await call_next(turn)
        except MessageTooLongError:
            self._metrics.refuse(platform, "too_long")
            raise
        except Exception:  # counted on its way to the boundary, which answers it
            self._metrics.refuse(platform, "error")
            raise


class CountAnswer:
    """Answering: answers with their duration and tokens, delivery errors, failures."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, turn: Turn, call_next: Handler) -> None:
        started, platform = self._clock(), turn.msg.platform
        try:
            await call_next(turn)
        except DeliveryError as exc:
            self._metrics.delivery_failed(exc)
            self._metrics.refuse(platform, "delivery")
            raise
        except Exception:  # counted on its way to the boundary, which answers it
            self._metrics.refuse(platform, "error")
            raise
        if turn.answer is not None:
            self._metrics.answered_with(platform, self._clock() - started, turn.answer.final)
