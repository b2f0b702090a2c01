"""HEARTH_PLATFORM_DOWN_S kept to within seconds: every pause is cut to the time left."""

from __future__ import annotations

import pytest

from adapters.telegram.reachability import Reachability
from bot.errors import PlatformDownError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pauses_back_off_and_are_cut_to_the_time_left() -> None:
    clock = Clock()
    reach = Reachability(20.0, clock)
    waits = []
    for _ in range(6):
        waits.append(reach.failed(clock.now, "Bad Gateway"))
        clock.now += waits[-1]

    assert waits == [0.5, 1.0, 2.0, 5.0, 10.0, 1.5]  # 30 s was next: only 1.5 s were left


def test_down_is_counted_from_when_the_first_failed_call_was_sent() -> None:
    clock = Clock()
    reach = Reachability(5.0, clock)
    sent = clock.now
    clock.now += 4.0  # the call took 4 s to fail
    reach.failed(sent, "timed out")
    clock.now += 1.0

    with pytest.raises(PlatformDownError, match="telegram unreachable for 5 s: Bad Gateway"):
        reach.failed(clock.now, "Bad Gateway")


def test_an_answer_starts_the_count_over() -> None:
    clock = Clock()
    reach = Reachability(5.0, clock)
    reach.failed(clock.now, "Bad Gateway")
    clock.now += 4.0

    reach.ok()
    clock.now += 4.0

    assert reach.failed(clock.now, "Bad Gateway") == 0.5
    assert reach.failing


def test_a_call_that_ran_out_of_time_reports_the_last_word_heard() -> None:
    clock = Clock()
    reach = Reachability(5.0, clock)
    reach.failed(clock.now, "Bad Gateway")
    clock.now += 6.0

    with pytest.raises(PlatformDownError, match="Bad Gateway"):
        reach.failed(clock.now, None)
