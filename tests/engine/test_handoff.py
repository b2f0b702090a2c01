"""A count's work handed to the stream of the same prompt (engine.handoff)."""

from __future__ import annotations

from engine.handoff import Handoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_what_a_count_kept_is_taken_once_by_the_stream() -> None:
    handoff: Handoff[str, list[int]] = Handoff()
    handoff.keep("prompt", [1, 2, 3])
    assert handoff.peek("prompt") == [1, 2, 3]  # a second count finds it too
    assert handoff.take("prompt") == [1, 2, 3]
    assert handoff.take("prompt") is None and handoff.peek("prompt") is None
    assert len(handoff) == 0


def test_thousands_of_channels_counted_at_once_are_all_kept_for_their_streams() -> None:
    handoff: Handoff[int, int] = Handoff()
    for channel in range(5000):  # a burst: every count before any stream
        handoff.keep(channel, channel * 10)
    assert [handoff.take(channel) for channel in range(5000)] == [c * 10 for c in range(5000)]
    assert len(handoff) == 0


def test_an_untaken_count_goes_after_its_time() -> None:
    clock = Clock()
    handoff: Handoff[str, int] = Handoff(keep_s=60, clock=clock)
    handoff.keep("tried while trimming", 1)
    clock.now = 30
    handoff.keep("kept", 2)
    clock.now = 61
    handoff.keep("new", 3)  # the first is past its time: dropped when something is kept
    assert handoff.peek("tried while trimming") is None
    assert handoff.peek("kept") == 2 and handoff.peek("new") == 3


def test_no_more_than_the_most_are_kept_oldest_out_first() -> None:
    handoff: Handoff[int, int] = Handoff(most=3)
    for n in range(5):
        handoff.keep(n, n)
    assert len(handoff) == 3
    assert [handoff.peek(n) for n in range(5)] == [None, None, 2, 3, 4]


def test_keeping_again_renews_an_entry() -> None:
    clock = Clock()
    handoff: Handoff[str, int] = Handoff(keep_s=60, clock=clock)
    handoff.keep("a", 1)
    clock.now = 50
    handoff.keep("a", 1)
    clock.now = 100
    handoff.keep("b", 2)
    assert handoff.peek("a") == 1
