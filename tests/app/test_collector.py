"""The collector's settings for a long-running server (bot.app.collector)."""

from __future__ import annotations

import gc

from bot.app.collector import GC_THRESHOLDS, tune_collector


def test_what_lives_at_start_is_frozen_and_young_collections_come_less_often() -> None:
    before = gc.get_threshold()
    survivor = [[n] for n in range(10)]  # alive when tuned: frozen with the rest
    try:
        tune_collector()
        assert gc.get_freeze_count() >= len(survivor)
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
        walked = {id(o) for o in gc.get_objects()}  # what collections still go over
        assert not walked & {id(o) for o in survivor}
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
